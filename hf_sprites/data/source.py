"""`ImageSource`: a loaded image dataset plus what training needs to know about its labels.

Every loader in `hf_sprites.data` returns one. Sources read from arrays (the course's `.npy` pair,
Fashion-MNIST IDX files, the embedded digits) keep the raw `uint8` pixels so that
`hf_sprites.data.to_tensors` can skip PIL entirely; their `datasets.Dataset` view is only encoded
when something asks for it.

Example:
    >>> import numpy as np
    >>> from hf_sprites.data import ImageSource
    >>> pixels = np.zeros((4, 8, 8), dtype=np.uint8)
    >>> source = ImageSource.from_arrays(pixels, np.array([0, 1, 1, 0]), class_names=["a", "b"], source="zeros")
    >>> len(source), source.num_classes, source.label_kind
    (4, 2, 'int')
    >>> source.dataset.features["label"].names
    ['a', 'b']
"""

import io
from dataclasses import dataclass, field

import datasets
import numpy as np
from PIL import Image

from .errors import DataError
from .labels import label_kind_of, validate_labels


@dataclass
class ImageSource:
    """Images with optional labels.

    Attributes:
        source: a human-readable description of where the images came from (used in messages and cards).
        num_classes: number of classes (int labels) or label-vector width (multi-hot), None when unlabelled.
        class_names: one name per class, or None when unknown.
        label_kind: "int" (labels int64 `(N,)`), "multi_hot" (float32 `(N, K)`, one-hot included) or None.
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
        """Wrap `uint8` pixels `(N, H, W[, C])` and labels `(N,)` ints or `(N, K)` multi-hot floats."""
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
