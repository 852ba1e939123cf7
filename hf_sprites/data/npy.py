"""The DeepLearning.AI course's sprite arrays: `sprites_*.npy` with `sprite_labels_*.npy`.

The course ships `sprites_1788_16x16.npy` (89,400 RGB sprites, `uint8 (N, 16, 16, 3)`) and
`sprite_labels_nc_1788_16x16.npy` (one-hot `(N, 5)`: hero, non-hero, food, spell, side-facing).
Label vectors stay float vectors (label_kind "multi_hot", which covers one-hot); a 1-D label file
gives class indices.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from hf_sprites.data.npy import load_npy_source
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "sprites_4_8x8.npy", np.zeros((4, 8, 8, 3), np.uint8))
    >>> np.save(folder / "sprite_labels_nc_4_8x8.npy", np.eye(5, dtype=np.float32)[[0, 1, 2, 3]])
    >>> source = load_npy_source(folder)
    >>> source.label_kind, source.num_classes, source.class_names[1]
    ('multi_hot', 5, 'non-hero')
"""

from pathlib import Path

import numpy as np

from .errors import DataError
from .source import ImageSource

COURSE_CLASS_NAMES = ["hero", "non-hero", "food", "spell", "side-facing"]
IMAGES_PREFIX, LABELS_PREFIX = "sprites_", "sprite_labels_"


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
    if split != "train":
        raise DataError(f"the course's sprite arrays have a single split 'train', not '{split}'; use split 'train'")
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
