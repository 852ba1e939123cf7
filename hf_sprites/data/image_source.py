"""`ImageSource`: loaded images with their checked labels, read one by one, and the error every data check raises.

Every loader in `hf_sprites.data` returns an `ImageSource`. Sources read from arrays (the course's `.npy`
pair, Fashion-MNIST IDX files, the embedded digits) keep the raw `uint8` pixels so that
`hf_sprites.data.to_tensors` can skip PIL entirely; their `datasets.Dataset` view is only encoded when
something asks for it. Every check runs before any heavy work and its `DataError` names what is wrong
and how to fix it, so a bad flag fails in seconds instead of after an epoch.

Example:
    >>> import numpy as np
    >>> from hf_sprites.data import ImageSource
    >>> pixels = np.zeros((4, 8, 8), dtype=np.uint8)
    >>> source = ImageSource.from_arrays(pixels, np.array([0, 1, 1, 0]), class_names=["a", "b"], source="zeros")
    >>> len(source), source.num_classes, source.label_kind
    (4, 2, 'int')
    >>> source.dataset.features["label"].names
    ['a', 'b']
    >>> read_image(source, 0).size
    (8, 8)
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import datasets
import numpy as np
from PIL import Image

_READ_BATCH = 256


class DataError(ValueError):
    """Training data that cannot be used as given. The message says what to change."""


@dataclass
class ImageSource:
    """Images with optional labels.

    Attributes:
        source: a human-readable description of where the images came from (used in messages and cards).
        num_classes: number of classes (class indices) or label-vector width (label vectors), None when unlabelled.
        class_names: one name per class, or None when unknown.
        label_kind: what `labels` holds, as the data gives it: "int" (class indices, int64 `(N,)`),
            "multi_hot" (float32 label vectors `(N, K)`, one-hot included) or None (no labels). How labels
            reach a model (training's `label_mode`) is decided in `hf_sprites.training`, not here.
        labels: the labels as a numpy array (already validated), or None.
        pixels: raw `uint8` pixels `(N, H, W)` or `(N, H, W, 3|4)` for array-backed sources, else None.
    """

    source: str
    num_classes: int | None = None
    class_names: list[str] | None = None
    label_kind: str | None = None
    labels: np.ndarray | None = field(default=None, repr=False)
    pixels: np.ndarray | None = field(default=None, repr=False)
    _dataset: datasets.Dataset | None = field(default=None, repr=False)

    @classmethod
    def from_dataset(cls, dataset, labels=None, num_classes=None, class_names=None, source=""):
        """Wrap a `datasets.Dataset` that has an "image" column (and "label" when `labels` is given)."""
        _check_not_empty(len(dataset), source)
        validate_labels(labels, num_classes)
        return cls(source, num_classes, class_names, label_kind_of(labels), labels, None, dataset)

    @classmethod
    def from_arrays(cls, pixels, labels=None, class_names=None, source=""):
        """Wrap `uint8` pixels `(N, H, W[, C])` and labels: class indices `(N,)` or label vectors `(N, K)`."""
        pixels = _as_pixel_array(pixels, source)
        _check_not_empty(len(pixels), source)
        num_classes = None
        if labels is not None:
            labels = _as_label_array(labels)
            if len(labels) != len(pixels):
                raise DataError(
                    f"{source} has {len(pixels)} images but {len(labels)} labels; give one label per image"
                )
            num_classes = _count_classes(labels, class_names)
            validate_labels(labels, num_classes)
        return cls(source, num_classes, class_names, label_kind_of(labels), labels, pixels)

    @property
    def dataset(self) -> datasets.Dataset:
        """The images as a `datasets.Dataset` with columns "image" (PIL) and, when labelled, "label"."""
        if self._dataset is None:
            self._dataset = _arrays_to_dataset(self.pixels, self.labels, self.class_names, self.num_classes)
        return self._dataset

    def __len__(self) -> int:
        return len(self.pixels) if self.pixels is not None else len(self._dataset)


def _check_not_empty(count: int, source: str) -> None:
    if count == 0:
        raise DataError(f"{source} holds no images; point to data with at least one image")


def _as_pixel_array(pixels, source: str) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, 3|4); a single channel axis is dropped."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 4 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8 or not (pixels.ndim == 3 or (pixels.ndim == 4 and pixels.shape[-1] in (3, 4))):
        raise DataError(
            f"images in {source} must be uint8 arrays (N, H, W) or (N, H, W, 3|4), got {pixels.dtype} {pixels.shape}; "
            "convert them, e.g. (x * 255).round().astype(numpy.uint8) for floats in [0, 1]"
        )
    return pixels


def _as_label_array(labels) -> np.ndarray:
    """Vectors become float32, integer indices int64; anything else is left for validate_labels to reject."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32)
    return labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels


def _count_classes(labels, class_names) -> int:
    if labels.ndim == 2:
        return labels.shape[1]
    if class_names is not None:
        return len(class_names)
    return int(labels.max()) + 1 if len(labels) else 0


def _png_bytes(pixels: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _label_feature(labels, class_names, num_classes):
    if labels.ndim == 2:
        return datasets.List(datasets.Value("float32"))
    names = class_names or [str(index) for index in range(num_classes)]
    return datasets.ClassLabel(names=list(names))


def _arrays_to_dataset(pixels, labels, class_names, num_classes) -> datasets.Dataset:
    columns = {"image": [_png_bytes(image) for image in pixels]}
    features = {"image": datasets.Image()}
    if labels is not None:
        columns["label"] = labels.tolist()
        features["label"] = _label_feature(labels, class_names, num_classes)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


# --- labels -------------------------------------------------------------------------------------------------------


def label_kind_of(labels) -> str | None:
    """The `ImageSource.label_kind` of `labels`: "int" for `(N,)`, "multi_hot" for `(N, K)`, None for no labels."""
    if labels is None:
        return None
    return "multi_hot" if np.ndim(labels) == 2 else "int"


def validate_labels(labels, num_classes: int | None) -> None:
    """Raise `DataError` unless `labels` fit `num_classes`.

    Class indices must be integers in `0..num_classes-1`; label vectors must be `num_classes` wide and
    hold finite values in [0, 1]. Accepts numpy arrays, torch tensors and lists; `labels=None` passes.

    Example:
        >>> import numpy as np
        >>> from hf_sprites.data import validate_labels
        >>> validate_labels(np.array([0, 4, 2]), num_classes=5)
        >>> try:
        ...     validate_labels(np.array([0, 5]), num_classes=5)
        ... except ValueError as err:
        ...     print(str(err).split(";")[0])
        label 5 at row 1 is out of range for 5 classes (valid: 0..4)
    """
    if labels is None:
        return
    if num_classes is None:
        raise ValueError("validate_labels needs num_classes when labels are given")
    labels = _to_numpy(labels)
    if labels.ndim == 1:
        _check_indices(labels, num_classes)
    elif labels.ndim == 2:
        _check_vectors(labels, num_classes)
    else:
        raise DataError(f"labels must be class indices (N,) or label vectors (N, K), got shape {labels.shape}")


def _to_numpy(labels) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    return np.asarray(labels)


def _check_indices(labels: np.ndarray, num_classes: int) -> None:
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"class labels must be integers, got {labels.dtype}; map them to indices 0..{num_classes - 1} "
            "(a datasets.ClassLabel column does this) or pass the column of label vectors instead"
        )
    negative = np.flatnonzero(labels < 0)
    if negative.size:
        row = int(negative[0])
        raise DataError(
            f"label {labels[row]} at row {row} is negative ({negative.size} rows in all); labels must be class "
            f"indices 0..{num_classes - 1}: drop or label those rows (-1 means 'no label' in datasets.ClassLabel)"
        )
    too_big = np.flatnonzero(labels >= num_classes)
    if too_big.size:
        row, needed = int(too_big[0]), int(labels.max()) + 1
        raise DataError(
            f"label {labels[row]} at row {row} is out of range for {num_classes} classes "
            f"(valid: 0..{num_classes - 1}); fix the labels, or use a model with {needed} classes "
            f"(e.g. ContextUnet n_cfeat={needed})"
        )


def _check_vectors(labels: np.ndarray, num_classes: int) -> None:
    if labels.shape[1] != num_classes:
        raise DataError(
            f"label vectors have {labels.shape[1]} entries but the model expects {num_classes}; "
            f"use a model with n_cfeat={labels.shape[1]} or labels of width {num_classes}"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(labels) & (labels >= 0) & (labels <= 1), axis=1))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"label vector at row {row} is {labels[row].tolist()}: one-hot / multi-hot labels must hold values "
            "in [0, 1]; fix that row or pass class indices instead"
        )


# --- reading images -----------------------------------------------------------------------------------------------


def read_image(source: ImageSource, index: int) -> Image.Image:
    """Return image `index` of `source` as a loaded PIL image, or raise `DataError` naming the row."""
    if source.pixels is not None:
        return Image.fromarray(source.pixels[index])
    try:
        image = source.dataset[int(index)]["image"]
        image.load()
        return image
    except Exception as err:  # PIL and datasets raise many types for a broken image
        raise _unreadable(source, index, err) from None


def iter_images(source: ImageSource, count: int | None = None) -> Iterator[tuple[int, Image.Image]]:
    """Yield `(index, image)` for the first `count` rows (all when None), decoding in batches."""
    count = len(source) if count is None else min(count, len(source))
    if source.pixels is not None:
        yield from ((index, read_image(source, index)) for index in range(count))
        return
    for start in range(0, count, _READ_BATCH):
        stop = min(start + _READ_BATCH, count)
        yield from enumerate(_read_batch(source, start, stop), start)


def _read_batch(source: ImageSource, start: int, stop: int) -> list[Image.Image]:
    try:
        images = source.dataset[start:stop]["image"]
        for image in images:
            image.load()
        return images
    except Exception:  # find the broken row, so that the message can name it
        return [read_image(source, index) for index in range(start, stop)]


def check_images(source: ImageSource, max_items: int | None = None) -> None:
    """Decode every image (the first `max_items`) and raise `DataError` at the first unreadable one.

    Example:
        >>> from hf_sprites.data import check_images, load_images
        >>> check_images(load_images(), max_items=10)  # the embedded digits all decode
    """
    for _ in iter_images(source, max_items):
        pass


def _unreadable(source: ImageSource, index: int, err: Exception) -> DataError:
    return DataError(
        f"image {index} of {source.source} cannot be read ({type(err).__name__}: {err}); "
        "remove or replace that file/row and run again"
    )
