"""Image formats that `datasets` does not read: the embedded digits, the course's `.npy` pair, (Fashion-)MNIST IDX.

- scikit-learn's bundled 8x8 digits (`load_digits_source`): 1,797 real greyscale digits (UCI "optical
  recognition of handwritten digits", 16 grey levels) inside the scikit-learn wheel, so training works on
  a fresh, offline machine. Grey levels 0..16 are scaled to 0..255 (bright ink on black, like MNIST).
- the DeepLearning.AI course's sprite arrays (`load_npy_source`): `sprites_1788_16x16.npy` (89,400 RGB
  sprites, `uint8 (N, 16, 16, 3)`) with `sprite_labels_nc_1788_16x16.npy` (one-hot `(N, 5)`: hero,
  non-hero, food, spell, side-facing). Label vectors stay float vectors (label_kind "multi_hot", which
  covers one-hot); a 1-D label file gives class indices.
- IDX files, raw or `.gz` (`load_idx_source`, `read_idx`, `write_idx`): `train-images-idx3-ubyte[.gz]` /
  `train-labels-idx1-ubyte[.gz]` (split "train") or the `t10k-*` pair (split "test") in the folder, in
  `raw/` or in torchvision's `FashionMNIST/raw/`, e.g. Debian's `/usr/share/datasets/fashion-mnist`. A
  folder whose name (or sub-path to the files) says "fashion" gets the ten class names of the Hub's
  `zalando-datasets/fashion_mnist`; other IDX folders (MNIST) get "0".."9".

All three return an array-backed `ImageSource` (raw `uint8` pixels kept).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from hf_sprites.data.formats import load_digits_source, load_idx_source, load_npy_source, write_idx
    >>> load_digits_source().pixels.shape
    (1797, 8, 8)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "sprites_4_8x8.npy", np.zeros((4, 8, 8, 3), np.uint8))
    >>> np.save(folder / "sprite_labels_nc_4_8x8.npy", np.eye(5, dtype=np.float32)[[0, 1, 2, 3]])
    >>> source = load_npy_source(folder)
    >>> source.label_kind, source.num_classes, source.class_names[1]
    ('multi_hot', 5, 'non-hero')
    >>> fashion = folder / "fashion"
    >>> fashion.mkdir()
    >>> write_idx(fashion / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    >>> write_idx(fashion / "train-labels-idx1-ubyte", np.array([9, 0, 3], np.uint8))
    >>> source = load_idx_source(fashion)
    >>> source.pixels.shape, source.class_names[9]
    ((3, 28, 28), 'Ankle boot')
"""

import gzip
from pathlib import Path

import numpy as np

from .image_source import DataError, ImageSource

DIGITS_DESCRIPTION = "scikit-learn load_digits (1797 handwritten 8x8 digits, embedded default)"
COURSE_CLASS_NAMES = ["hero", "non-hero", "food", "spell", "side-facing"]
IMAGES_PREFIX, LABELS_PREFIX = "sprites_", "sprite_labels_"
FASHION_MNIST_CLASS_NAMES = [
    "T - shirt / top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
_UINT8_CODE, _GZIP_MAGIC = 0x08, b"\x1f\x8b"


def _check_single_split(split: str, what: str) -> None:
    if split != "train":
        raise DataError(f"{what} have a single split 'train', not '{split}'; use split 'train'")


# --- the embedded digits ------------------------------------------------------------------------------------------


def load_digits_source(split: str = "train") -> ImageSource:
    """Return scikit-learn's bundled digits as an `ImageSource` (`uint8 (1797, 8, 8)`, labels 0..9)."""
    _check_single_split(split, "the embedded digits")
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(digit) for digit in digits.target_names]
    return ImageSource.from_arrays(pixels, digits.target, class_names=names, source=DIGITS_DESCRIPTION)


# --- the course's .npy pair ---------------------------------------------------------------------------------------


def find_npy_pair(path) -> tuple[Path, Path | None] | None:
    """Return `(images_file, labels_file or None)` for a folder or `.npy` file, None if there is no sprite array."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npy":
        return path, _labels_for(path)
    if not path.is_dir():
        return None
    candidates = sorted(path.glob(f"{IMAGES_PREFIX}*.npy"))
    if len(candidates) > 1:
        raise DataError(
            f"{path} holds several sprite arrays {[c.name for c in candidates]}; "
            "pass the one to use as --train_data_dir"
        )
    return (candidates[0], _labels_for(candidates[0])) if candidates else None


def _labels_for(images: Path) -> Path | None:
    """The label file beside `images`: same suffix (sprites_X.npy ↔ sprite_labels_*X.npy), else the only one."""
    suffix = images.name[len(IMAGES_PREFIX) :] if images.name.startswith(IMAGES_PREFIX) else None
    label_files = sorted(images.parent.glob(f"{LABELS_PREFIX}*.npy"))
    matching = [f for f in label_files if suffix and f.name.endswith(suffix)]
    if len(matching) == 1:
        return matching[0]
    return label_files[0] if len(label_files) == 1 else None


def load_npy_source(path, split: str = "train") -> ImageSource:
    """Load the course's sprite arrays from a folder (or the images `.npy` itself) as an `ImageSource`."""
    pair = find_npy_pair(path)
    if pair is None:
        raise DataError(
            f"no {IMAGES_PREFIX}*.npy file at {path}; pass the folder that holds the course's sprite arrays"
        )
    _check_single_split(split, "the course's sprite arrays")
    images_file, labels_file = pair
    pixels = _load_array(images_file)
    labels = _load_array(labels_file) if labels_file is not None else None
    names = COURSE_CLASS_NAMES if labels is not None and labels.ndim == 2 and labels.shape[1] == 5 else None
    described = images_file.name + (f" + {labels_file.name}" if labels_file is not None else "")
    return ImageSource.from_arrays(pixels, labels, class_names=names, source=f"course sprites {described}")


def _load_array(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read {file} as a numpy array ({err}); re-download or re-save it with numpy.save"
        ) from None


# --- IDX files ----------------------------------------------------------------------------------------------------


def find_idx_files(folder, split: str = "train") -> tuple[Path, Path] | None:
    """Return `(images_file, labels_file)` of `split` in `folder` (or its raw/ subfolders), None if absent."""
    prefix = IDX_SPLIT_PREFIXES.get(split, split)
    for where in (Path(folder), Path(folder) / "raw", Path(folder) / "FashionMNIST" / "raw"):
        images = _first(where, f"{prefix}-images?idx3-ubyte")
        labels = _first(where, f"{prefix}-labels?idx1-ubyte")
        if images and labels:
            return images, labels
    return None


def has_idx_files(folder) -> bool:
    """True when `folder` holds IDX files of any split."""
    return any(find_idx_files(folder, split) for split in IDX_SPLIT_PREFIXES)


def _first(folder: Path, pattern: str) -> Path | None:
    if not folder.is_dir():
        return None
    matches = sorted(folder.glob(pattern)) + sorted(folder.glob(pattern + ".gz"))
    return matches[0] if matches else None


def _says_fashion(folder: Path, images_file: Path) -> bool:
    """True when the folder's own name or the sub-path to the files mentions "fashion"."""
    named = folder.resolve().name + "/" + str(images_file.parent.relative_to(folder))
    return "fashion" in named.lower()


def read_idx(path) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a `uint8` array of the shape its header declares."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != _UINT8_CODE:
        raise DataError(
            f"{path} is not a uint8 IDX file (bad magic {data[:4].hex()}); use the original (Fashion-)MNIST files"
        )
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset, expected = 4 + 4 * ndim, int(np.prod(shape))
    if len(data) - offset != expected:
        raise DataError(
            f"{path} declares {shape} ({expected} bytes) but holds {len(data) - offset}; the file is truncated"
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def write_idx(path, array: np.ndarray) -> None:
    """Write a `uint8` array as an IDX file (gzip when `path` ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UINT8_CODE, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(payload) if str(path).endswith(".gz") else payload)


def load_idx_source(folder, split: str = "train") -> ImageSource:
    """Load one split of an IDX folder as an `ImageSource` (pixels `(N, 28, 28)`, int labels, class names)."""
    files = find_idx_files(folder, split)
    if files is None:
        raise DataError(
            f"no IDX files for split '{split}' in {folder} (looked for "
            f"{IDX_SPLIT_PREFIXES.get(split, split)}-images-idx3-ubyte[.gz] and the labels file); "
            f"the IDX splits are {list(IDX_SPLIT_PREFIXES)}"
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{files[0].name} must hold (N, H, W) images and {files[1].name} (N,) labels; "
            f"got {images.shape}, {labels.shape}: use the original (Fashion-)MNIST files"
        )
    names = FASHION_MNIST_CLASS_NAMES if _says_fashion(Path(folder), files[0]) else [str(i) for i in range(10)]
    return ImageSource.from_arrays(images, labels, class_names=names, source=f"IDX {files[0].name} ({folder})")
