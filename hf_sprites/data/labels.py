"""Label checks: class indices `(N,)` or the course's one-hot / multi-hot vectors `(N, K)`.

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

import numpy as np

from .errors import DataError


def label_kind_of(labels) -> str | None:
    """Return "int" for class indices `(N,)`, "multi_hot" for vectors `(N, K)`, None for no labels."""
    if labels is None:
        return None
    return "multi_hot" if np.ndim(labels) == 2 else "int"


def validate_labels(labels, num_classes: int | None) -> None:
    """Raise `DataError` unless `labels` fit `num_classes`.

    Class indices must be integers in `0..num_classes-1`; label vectors must be `num_classes` wide and
    hold finite values in [0, 1]. Accepts numpy arrays, torch tensors and lists; `labels=None` passes.
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
