"""Image preprocessing: PIL image → float tensor `(C, H, W)` in [-1, 1] (torchvision), one image or a whole source.

Steps: scale 16-bit and float greyscale to 8 bits (`to_8_bit`: PIL's own conversion would clip them), composite
transparency onto a background colour, convert to the model's channel count (1 = L, 3 = RGB; palette and CMYK
images through PIL's RGB conversion), resize (NEAREST keeps pixel-art palettes exact; bilinear for photos),
optionally crop, optionally flip, `ToTensor`, `Normalize(0.5, 0.5)`.

Three ways to make a square: by default the image is resized straight to `resolution x resolution`; with
`center_crop` the shorter side is resized and the centre cut out; with `random_crop` (training without
`--center_crop`, as diffusers' `train_unconditional.py` does) the shorter side is resized and the square
cut where the caller says (`crop_at`, fractions of the free room; the training batches draw it per item and
epoch, seeded and resumable). Square images come out the same all three ways.
`to_tensors` preprocesses a whole `ImageSource` in one pass (array-backed sources skip PIL where the
result is the same), for the on-device batches of `hf_sprites.data.batching`. `choose_channels` decides the channel
count from every image of a source (greyscale only when all are), and says so when the images are mixed.

Example:
    >>> from PIL import Image
    >>> from hf_sprites.data import build_transform
    >>> transform = build_transform(16, channels=3, background=(0, 0, 0))
    >>> x = transform(Image.new("RGBA", (32, 32), (255, 0, 0, 0)))  # fully transparent red
    >>> tuple(x.shape), x.min().item(), x.max().item()  # becomes the black background
    ((3, 16, 16), -1.0, -1.0)
    >>> from hf_sprites.data import load_images, to_tensors
    >>> images, labels = to_tensors(load_images(), build_transform(8, channels=1))
    >>> images.shape, labels.dtype
    (torch.Size([1797, 1, 8, 8]), torch.int64)
"""

import io
from collections import Counter

import datasets
import numpy as np
import torch
from PIL import Image, ImageColor
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from .image_source import DataError, ImageSource, iter_images

INTERPOLATIONS = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_SCAN_BATCH = 1024


def has_alpha(image: Image.Image) -> bool:
    """True when the image carries transparency (an alpha band or a transparent palette / colour key)."""
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def composite_on_background(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """Alpha-composite `image` over an opaque `background` colour; returns an RGB image."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer greyscale (`I;16*`, `I`) scaled from 0..65535, float greyscale (`F`) from 0..1, to
    8-bit `L`; other images as they are. (PIL's `convert("L")` clips such images instead of scaling them.)

    >>> import numpy as np
    >>> wide = Image.fromarray(np.array([[0, 8738, 65535]], dtype=np.uint16))
    >>> wide.mode, np.asarray(to_8_bit(wide)).tolist()
    ('I;16', [[0, 34, 255]])
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        scale = 255 / 65535
    elif image.mode == "F":
        scale = 255.0
    else:
        return image
    levels = np.rint(np.asarray(image, dtype=np.float64) * scale)
    return Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), mode="L")


class ToChannels:
    """Scale wide greyscale to 8 bits, flatten transparency onto `background`, then convert to L (channels=1) or RGB
    (channels=3)."""

    def __init__(self, channels: int, background=(255, 255, 255)):
        self.channels, self.background = channels, tuple(background)

    def __call__(self, image: Image.Image) -> Image.Image:
        image = to_8_bit(image)
        if has_alpha(image):
            image = composite_on_background(image, self.background)
        return image.convert("L" if self.channels == 1 else "RGB")

    def __repr__(self) -> str:
        return f"ToChannels(channels={self.channels}, background={self.background})"


class ImageTransform:
    """The preprocessing for one model input size; call it on a PIL image. See `build_transform`."""

    def __init__(
        self,
        resolution,
        channels,
        center_crop=False,
        random_flip=False,
        interpolation="nearest",
        background=(255, 255, 255),
        random_crop=False,
    ):
        _check_arguments(resolution, channels, interpolation)
        self.resolution, self.channels = resolution, channels
        self.center_crop, self.random_flip, self.interpolation = center_crop, random_flip, interpolation
        self.random_crop = random_crop and not center_crop
        self.background = parse_background(background)
        self.pipeline = transforms.Compose(self._steps())

    def _steps(self) -> list:
        mode = INTERPOLATIONS[self.interpolation]
        size = self.resolution if self.center_crop or self.random_crop else (self.resolution, self.resolution)
        steps = [ToChannels(self.channels, self.background), transforms.Resize(size, interpolation=mode)]
        steps += [transforms.CenterCrop(self.resolution)] if self.center_crop else []
        steps += [transforms.RandomHorizontalFlip()] if self.random_flip else []
        return steps + [transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]

    def __call__(self, image: Image.Image, crop_at=None) -> torch.Tensor:
        """The image as a tensor; with `random_crop`, cut at `crop_at` = (top, left) fractions (default: centre)."""
        tensor = self.pipeline(image)
        return crop(tensor, self.resolution, crop_at) if self.random_crop else tensor

    def whole(self, image: Image.Image) -> torch.Tensor | None:
        """The image as the one tensor every crop of it gives, or None when a random crop has room to move."""
        tensor = self.pipeline(image)
        return None if tuple(tensor.shape[-2:]) != (self.resolution, self.resolution) else tensor

    @property
    def deterministic(self) -> bool:
        """False when the transform draws random numbers (random flip)."""
        return not self.random_flip

    def from_pixels(self, pixels: np.ndarray) -> torch.Tensor | None:
        """Transform a whole `uint8 (N, H, W[, C])` array at once, exactly as per-image calls would.

        Returns None where that exactness cannot be promised (resizing, transparency, random flips); the
        caller then falls back to per-image calls.
        """
        if not self.deterministic or pixels.dtype != np.uint8 or pixels.shape[1:3] != (self.resolution,) * 2:
            return None
        pixels = pixels[..., None] if pixels.ndim == 3 else pixels
        if pixels.shape[-1] not in (1, 3):
            return None
        pixels = _match_channels(pixels, self.channels)
        images = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).to(torch.float32)
        return images.div_(255).sub_(0.5).div_(0.5)  # the same float ops as ToTensor + Normalize(0.5, 0.5)

    def __repr__(self) -> str:
        return f"ImageTransform({self.pipeline})"


def crop(tensor: torch.Tensor, size: int, crop_at=None) -> torch.Tensor:
    """A `size x size` cut of `tensor (..., H, W)`, `crop_at` = (top, left) fractions of the free room in [0, 1].

    >>> crop(torch.arange(12.0).view(1, 3, 4), 3, (0.0, 1.0)).tolist()
    [[[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [9.0, 10.0, 11.0]]]
    """
    height, width = tensor.shape[-2:]
    top_share, left_share = (0.5, 0.5) if crop_at is None else crop_at
    top, left = round(float(top_share) * (height - size)), round(float(left_share) * (width - size))
    return tensor[..., top:top + size, left:left + size]


def build_transform(
    resolution, channels, center_crop=False, random_flip=False, interpolation="nearest", background=(255, 255, 255),
    random_crop=False,
) -> ImageTransform:
    """Return a callable PIL image → float tensor `(channels, resolution, resolution)` in [-1, 1].

    Args:
        resolution: output height and width.
        channels: 1 (greyscale) or 3 (RGB), the model's `in_channels`.
        center_crop: resize the shorter side then cut the centre, instead of resizing to a square.
        random_flip: flip horizontally with probability 0.5 on every call. Training leaves it off: the
            batches flip by their own seeded, resumable decision (`hf_sprites.data.batching`).
        interpolation: "nearest" (pixel art: keeps the palette) or "bilinear".
        background: RGB tuple or colour name that transparent pixels become.
        random_crop: resize the shorter side, then cut the square at the call's `crop_at` (ignored with center_crop).
    """
    return ImageTransform(resolution, channels, center_crop, random_flip, interpolation, background, random_crop)


def make_transform(cfg, channels: int) -> ImageTransform:
    """The preprocessing a training run's flags ask for: a random crop unless `center_crop` (as diffusers'
    `train_unconditional.py`); crop places and flips are drawn per batch (`hf_sprites.data.batching`).

    `cfg` is any object with the data flags `resolution`, `center_crop`, `interpolation` and `background`
    (`hf_sprites.training.TrainConfig` is one).
    """
    return build_transform(
        cfg.resolution,
        channels,
        center_crop=cfg.center_crop,
        interpolation=cfg.interpolation,
        background=tuple(cfg.background),
        random_crop=not cfg.center_crop,
    )


def parse_background(background) -> tuple[int, int, int]:
    """An RGB tuple from a tuple/list of three 0..255 ints or a colour name/hex string."""
    try:
        rgb = ImageColor.getrgb(background)[:3] if isinstance(background, str) else tuple(int(v) for v in background)
    except (ValueError, TypeError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise DataError(
            f"background {background!r} is not a colour; "
            "give three 0..255 values like (255, 255, 255) or a name like 'white'"
        )
    return rgb


def _check_arguments(resolution, channels, interpolation) -> None:
    if not isinstance(resolution, int) or resolution < 1:
        raise DataError(f"resolution must be a positive integer, got {resolution!r}")
    if channels not in (1, 3):
        raise DataError(
            f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}; set the model's in_channels to 1 or 3"
        )
    if interpolation not in INTERPOLATIONS:
        raise DataError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {interpolation!r}")


def _match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(N, H, W, 1|3) uint8 → (N, H, W, channels), with PIL's own integer RGB → L formula."""
    if pixels.shape[-1] == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    weighted = pixels.astype(np.uint32) @ np.array([19595, 38470, 7471], dtype=np.uint32)
    return ((weighted + 0x8000) >> 16).astype(np.uint8)[..., None]


def image_modes(source: ImageSource, max_items: int | None = None) -> Counter:
    """How many of the first `max_items` images (all by default) have each PIL mode, read from the file headers
    (array sources: from the array's shape). Unreadable images are left out (`check_images` reports them)."""
    count = len(source) if max_items is None else min(max_items, len(source))
    if source.pixels is not None:
        grey = source.pixels.ndim == 3 or source.pixels.shape[-1] == 1
        return Counter({("L" if grey else "RGB"): count})
    files = source.dataset.cast_column("image", datasets.Image(decode=False))
    modes = Counter()
    for start in range(0, count, _SCAN_BATCH):
        for stored in files[start : min(start + _SCAN_BATCH, count)]["image"]:
            try:
                with Image.open(io.BytesIO(stored["bytes"]) if stored["bytes"] else stored["path"]) as image:
                    modes[image.mode] += 1
            except Exception:  # noqa: BLE001  (a broken file: check_images names it)
                continue
    return modes


def choose_channels(source: ImageSource, requested: int | None = None, max_items: int | None = None):
    """`(channels, note)`: `requested` when given, else 1 when every image is greyscale and 3 otherwise; `note`
    describes a mix of greyscale and colour images (converted to colour on purpose), else None.

    >>> from hf_sprites.data import load_images
    >>> choose_channels(load_images())
    (1, None)
    """
    if requested:
        return requested, None
    modes = image_modes(source, max_items)
    grey = sum(n for mode, n in modes.items() if mode in GREY_MODES)
    colour = sum(modes.values()) - grey
    if not colour:
        return 1, None
    if not grey:
        return 3, None
    return 3, (f"{source.source} mixes {grey} greyscale and {colour} colour images ({dict(modes)}): training in "
               "colour, the greyscale images repeated to RGB; pass --in_channels 1 to train in greyscale instead")


def to_tensors(source: ImageSource, transform, max_items: int | None = None):
    """Preprocess the first `max_items` images (all by default) in one pass.

    Returns `(images, labels)`: images float32 `(N, C, H, W)`, labels int64 `(N,)`, float32 `(N, K)` or None.
    Array-backed sources skip PIL where the transform can promise the same result (`from_pixels`).
    """
    if not getattr(transform, "deterministic", True):
        raise DataError(
            "to_tensors needs a deterministic transform: build it with random_flip=False "
            "and flip in DeviceBatcher(random_flip=True)"
        )
    count = len(source) if max_items is None else min(max_items, len(source))
    images = None
    if source.pixels is not None and hasattr(transform, "from_pixels"):
        images = transform.from_pixels(source.pixels[:count])
    if images is None:
        images = _transform_each(source, transform, count)
    labels = None if source.labels is None else torch.from_numpy(source.labels[:count].copy())
    return images, labels


class CropRoomError(DataError):
    """A random crop would cut a non-square image, so one preprocessed tensor per image cannot stand for it."""


def _transform_each(source: ImageSource, transform, count: int) -> torch.Tensor:
    images = None
    for index, image in iter_images(source, count):
        tensor = transform.whole(image) if getattr(transform, "random_crop", False) else transform(image)
        if tensor is None:
            raise CropRoomError(f"image {index} of {source.source} is not square, so a random crop can land in more "
                                "than one place; load per item (--cache_on_device auto/never) or use --center_crop")
        if images is None:
            images = torch.empty((count, *tensor.shape), dtype=tensor.dtype)
        images[index] = tensor
    return images
