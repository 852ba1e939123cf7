"""Datasets read through the `datasets` library (a Hub id or a `load_dataset`-able folder): split, columns, errors.

The split is checked against the dataset's metadata before anything is downloaded, and the errors that
`datasets` / `huggingface_hub` raise become one `DataError` that says what to do: an unreachable Hub
becomes a `HubUnreachableError` that lists the offline options.

The image column is the one given, else the first `datasets.Image` feature, else a column named
image / img / pixel_values. The label column is the one given, else the first `datasets.ClassLabel`
feature, else a column named label / labels. Labels may be class indices, strings (encoded to a
ClassLabel) or fixed-length one-hot / multi-hot vectors.

Example:
    >>> import datasets
    >>> from PIL import Image
    >>> from hf_sprites.data.hub import source_from_dataset
    >>> ds = datasets.Dataset.from_dict({"img": [Image.new("RGB", (4, 4))] * 2, "kind": ["cat", "dog"]})
    >>> source = source_from_dataset(ds, "tiny", class_column="kind")
    >>> source.dataset.column_names, source.class_names, source.labels.tolist()
    (['image', 'label'], ['cat', 'dog'], [0, 1])
    >>> train = load_hub_dataset("../shared/data/crawl-sprites", split="train")  # doctest: +SKIP
    >>> train.num_rows  # doctest: +SKIP
    2286
"""

import re
from contextlib import contextmanager

import datasets
import numpy as np
from datasets.data_files import EmptyDatasetError
from datasets.exceptions import DataFilesNotFoundError
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from .image_source import DataError, ImageSource, read_image


class HubUnreachableError(DataError):
    """The Hugging Face Hub could not be reached and the dataset is not available offline."""


OFFLINE_OPTIONS = (
    "Offline options: (1) a local folder with --train_data_dir PATH (an image folder, a load_dataset-able folder "
    "such as shared/data/crawl-sprites, or the course's sprites_*.npy + sprite_labels_*.npy pair); "
    "(2) Fashion-MNIST IDX files with --train_data_dir /usr/share/datasets/fashion-mnist "
    "(Debian/Ubuntu: apt-get install dataset-fashion-mnist); "
    "(3) a dataset already in the HF cache: set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 and keep --dataset_name; "
    "or give no dataset flag at all to train on the embedded scikit-learn digits."
)


def _network_errors() -> tuple:
    errors = (ConnectionError, OfflineModeIsEnabled, LocalEntryNotFoundError, TimeoutError)
    try:
        from huggingface_hub.utils import httpx
    except ImportError:  # huggingface_hub < 1.0 speaks requests
        import requests as httpx
    return errors + tuple(
        getattr(httpx, name) for name in ("TransportError", "ConnectionError") if hasattr(httpx, name)
    )


NETWORK_ERRORS = _network_errors()


def load_hub_dataset(path: str, config_name=None, split: str = "train", cache_dir=None) -> datasets.Dataset:
    """Return split `split` of dataset `path` (Hub id or local folder), raising `DataError` with a fix on failure."""
    with translate_hub_errors(path):
        builder = datasets.load_dataset_builder(path, config_name, cache_dir=cache_dir)
        check_split(split, known_splits(builder), path)
        builder.download_and_prepare()
        check_split(split, known_splits(builder), path)
        return builder.as_dataset(split=split)


def check_hub_id(name: str) -> None:
    """Raise `DataError` when `name` cannot be a Hub dataset id (checked before any network access)."""
    with translate_hub_errors(name):
        validate_repo_id(name)


def known_splits(builder) -> list[str]:
    """Split names the builder knows before or after preparing; empty when it cannot tell yet."""
    if builder.info.splits:
        return list(builder.info.splits)
    return [str(name) for name in (builder.config.data_files or {})]


def split_names(split: str) -> list[str]:
    """The plain split names inside a split expression such as "train[:100]+test"."""
    return [part.strip() for part in re.sub(r"\[[^\]]*\]", "", split).split("+")]


def check_split(split: str, available: list[str], path: str) -> None:
    """Raise `DataError` when `split` names a split that `available` (if known) does not have."""
    missing = [name for name in split_names(split) if available and name not in available]
    if missing:
        raise DataError(f"dataset '{path}' has no split '{missing[0]}'; its splits are {available}: pick one of them")


@contextmanager
def translate_hub_errors(path: str):
    """Turn the errors of `datasets` / `huggingface_hub` into one `DataError` that names the fix."""
    try:
        yield
    except DataError:
        raise
    except NETWORK_ERRORS as err:
        raise HubUnreachableError(
            f"cannot load dataset '{path}': the Hugging Face Hub cannot be reached ({type(err).__name__}: {err}) "
            f"and the dataset is not in the local cache. {OFFLINE_OPTIONS}"
        ) from None
    except (FileNotFoundError, HFValidationError) as err:
        raise DataError(_not_found_message(path, err)) from None


def _not_found_message(path: str, err: Exception) -> str:
    if isinstance(err, (EmptyDatasetError, DataFilesNotFoundError)):
        return f"'{path}' holds no data files that datasets can read ({err}); point to a folder of images or Parquet"
    return (
        f"unknown dataset '{path}': it is neither a local folder nor a dataset on the Hugging Face Hub "
        f"({type(err).__name__}: {err}). Check the spelling (Hub ids look like 'owner/name'; log in with "
        "`hf auth login` for private or gated datasets), or pass a local folder with --train_data_dir"
    )


# --- image and label columns --------------------------------------------------------------------------------------


IMAGE_COLUMN_NAMES = ("image", "img", "pixel_values")
LABEL_COLUMN_NAMES = ("label", "labels")
_LIST_FEATURES = (datasets.List, datasets.LargeList)


def source_from_dataset(dataset, source: str, image_column=None, class_column=None) -> ImageSource:
    """Check the columns of `dataset` and return an `ImageSource` with columns "image" and "label"."""
    image_column = find_image_column(dataset, source, image_column)
    label_column = find_label_column(dataset, source, class_column)
    dataset = _cast_to_images(dataset, image_column)
    labels = num_classes = class_names = None
    if label_column is not None:
        if _is_string(dataset.features[label_column]):
            dataset = dataset.class_encode_column(label_column)
        labels, num_classes, class_names = read_label_column(dataset, label_column)
    dataset = _keep_columns(dataset, image_column, label_column)
    result = ImageSource.from_dataset(dataset, labels, num_classes, class_names, source)
    _check_first_image(result, image_column)
    return result


def find_image_column(dataset, source: str, image_column=None) -> str:
    """Return the name of the column that holds the images, or raise `DataError`."""
    fix = "pass one of them as the image column (--image_column)"
    name = _pick_column(dataset, source, image_column, datasets.Image, IMAGE_COLUMN_NAMES, "image", fix)
    if name is None:
        raise DataError(
            f"{source} has no image column: no datasets.Image feature and none of {list(IMAGE_COLUMN_NAMES)} among "
            f"its columns {list(dataset.features)}; pass the column that holds the images (--image_column)"
        )
    return name


def find_label_column(dataset, source: str, class_column=None) -> str | None:
    """Return the label column (the given one, a ClassLabel feature, or label/labels), None if there is none."""
    fix = "pass one of them with --class_column, or leave --class_column out to train without labels"
    return _pick_column(dataset, source, class_column, datasets.ClassLabel, LABEL_COLUMN_NAMES, "class", fix)


def _pick_column(dataset, source, given, feature_type, usual_names, what, fix) -> str | None:
    """The given column (which must exist), else the first of that feature type, else a usual name, else None."""
    columns = list(dataset.features)
    if given is not None:
        if given not in columns:
            raise DataError(f"{what} column '{given}' is not in {source}; its columns are {columns}: {fix}")
        return given
    typed = [name for name, feature in dataset.features.items() if isinstance(feature, feature_type)]
    return next(iter(typed + [name for name in usual_names if name in columns]), None)


def read_label_column(dataset, name: str):
    """Return `(labels, num_classes, class_names)` read from column `name` without decoding any image."""
    feature = dataset.features[name]
    column = dataset.with_format("arrow")[name]
    _check_no_missing(column, name)
    if isinstance(feature, datasets.ClassLabel):
        return column.to_numpy().astype(np.int64), feature.num_classes, list(feature.names)
    if isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")):
        labels = column.to_numpy().astype(np.int64)
        return labels, (int(labels.max()) + 1 if len(labels) else 0), None
    if isinstance(feature, _LIST_FEATURES):
        labels = _label_vectors(column, name)
        return labels, labels.shape[1], None
    raise DataError(
        f"label column '{name}' holds {feature}; labels must be a ClassLabel, integer class indices, strings or "
        "fixed-length one-hot / multi-hot vectors: pick another column with --class_column"
    )


def _label_vectors(column, name: str) -> np.ndarray:
    try:
        labels = np.asarray(column.to_pylist(), dtype=np.float32)
    except (ValueError, TypeError) as err:
        raise DataError(
            f"label column '{name}' has vectors of different lengths ({err}); make every row the same width"
        ) from None
    if labels.ndim != 2:
        raise DataError(f"label column '{name}' must hold one vector per row, got shape {labels.shape}")
    return labels


def _check_no_missing(column, name: str) -> None:
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{column.null_count} rows of label column '{name}' have no label (first at row {first}); "
            "drop or label them, or leave --class_column out to train without labels"
        )


def _is_string(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _cast_to_images(dataset, name: str):
    feature = dataset.features[name]
    if isinstance(feature, datasets.Image) and feature.decode:
        return dataset
    try:
        return dataset.cast_column(name, datasets.Image())
    except Exception as err:  # datasets raises several types for an impossible cast
        raise DataError(
            f"column '{name}' holds {feature}, not images (PIL images, image bytes or file paths): "
            f"pick the image column with --image_column ({type(err).__name__}: {err})"
        ) from None


def _check_first_image(source: ImageSource, name: str) -> None:
    """Decode image 0 now, so that a column of something else fails at load time, not mid-training."""
    try:
        read_image(source, 0)
    except DataError as err:
        raise DataError(
            f"{err}. If column '{name}' does not hold the images, pick the image column with --image_column"
        ) from None


def _keep_columns(dataset, image_column: str, label_column: str | None):
    keep = [image_column] + ([label_column] if label_column else [])
    dataset = dataset.select_columns(keep)
    renames = {old: new for old, new in zip(keep, ("image", "label"), strict=False) if old != new}
    return dataset.rename_columns(renames) if renames else dataset
