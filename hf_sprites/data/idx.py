"""Fashion-MNIST (or MNIST) IDX files, raw or `.gz`, as the Hub dataset's schema: image + label.

Looks for `train-images-idx3-ubyte[.gz]` / `train-labels-idx1-ubyte[.gz]` (split "train") or the
`t10k-*` pair (split "test") in the folder, in `raw/` or in torchvision's `FashionMNIST/raw/`, e.g.
Debian's `/usr/share/datasets/fashion-mnist`. A folder whose name (or sub-path to the files) says
"fashion" gets the ten class names of the Hub's `zalando-datasets/fashion_mnist`; other IDX folders
(MNIST) get "0".."9".

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from hf_sprites.data.idx import write_idx, load_idx_source
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "fashion"
    >>> folder.mkdir()
    >>> write_idx(folder / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    >>> write_idx(folder / "train-labels-idx1-ubyte", np.array([9, 0, 3], np.uint8))
    >>> source = load_idx_source(folder)
    >>> source.pixels.shape, source.class_names[9]
    ((3, 28, 28), 'Ankle boot')
"""

import gzip
from pathlib import Path

import numpy as np

from .errors import DataError
from .source import ImageSource

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
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
_UINT8_CODE, _GZIP_MAGIC = 0x08, b"\x1f\x8b"


def find_idx_files(folder, split: str = "train") -> tuple[Path, Path] | None:
    """Return `(images_file, labels_file)` of `split` in `folder` (or its raw/ subfolders), None if absent."""
    prefix = SPLIT_PREFIXES.get(split, split)
    for where in (Path(folder), Path(folder) / "raw", Path(folder) / "FashionMNIST" / "raw"):
        images = _first(where, f"{prefix}-images?idx3-ubyte")
        labels = _first(where, f"{prefix}-labels?idx1-ubyte")
        if images and labels:
            return images, labels
    return None


def has_idx_files(folder) -> bool:
    """True when `folder` holds IDX files of any split."""
    return any(find_idx_files(folder, split) for split in SPLIT_PREFIXES)


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
            f"{SPLIT_PREFIXES.get(split, split)}-images-idx3-ubyte[.gz] and the labels file); "
            f"the IDX splits are {list(SPLIT_PREFIXES)}"
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DataError(
            f"{files[0].name} must hold (N, H, W) images and {files[1].name} (N,) labels; "
            f"got {images.shape}, {labels.shape}: use the original (Fashion-)MNIST files"
        )
    names = FASHION_MNIST_CLASS_NAMES if _says_fashion(Path(folder), files[0]) else [str(i) for i in range(10)]
    return ImageSource.from_arrays(images, labels, class_names=names, source=f"IDX {files[0].name} ({folder})")
