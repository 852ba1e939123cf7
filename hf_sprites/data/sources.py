"""`load_images`: the one entry point that picks the loader for every kind of training data hf_sprites accepts.

- no dataset arguments: the embedded default, scikit-learn's bundled 8x8 digits (10 classes);
- `dataset_name="owner/name"`: a Hub dataset through `datasets`;
- `dataset_name` or `train_data_dir` naming a folder: the course's `sprites_*.npy` pair, Fashion-MNIST
  IDX files, or anything `load_dataset(folder)` reads (Parquet folders such as crawl-sprites, image
  folders with class sub-folders).

Example:
    >>> from hf_sprites.data import load_images
    >>> source = load_images()  # the embedded digits
    >>> source.num_classes, source.class_names[:3], len(source)
    (10, ['0', '1', '2'], 1797)
"""

from functools import partial
from pathlib import Path

from .formats import find_npy_pair, has_idx_files, load_digits_source, load_idx_source, load_npy_source
from .hub import check_hub_id, load_hub_dataset, source_from_dataset
from .image_source import DataError, ImageSource


def load_images(
    dataset_name=None,
    dataset_config_name=None,
    train_data_dir=None,
    split="train",
    image_column=None,
    class_column=None,
    cache_dir=None,
) -> ImageSource:
    """Load `split` of the chosen data as an `ImageSource`; raise `DataError` (with the fix) on bad input.

    `image_column` / `class_column` pick columns by name; by default the first `datasets.Image` column and
    the first `ClassLabel` column (or one named label/labels) are used. Labels are optional unless
    `class_column` is given.
    """
    if dataset_name and train_data_dir:
        raise DataError("give either --dataset_name or --train_data_dir, not both")
    location = train_data_dir or dataset_name
    if not location:
        source = _array_source(load_digits_source, split, dataset_config_name)
    elif train_data_dir or _looks_local(dataset_name):
        source = _load_local(
            Path(location).expanduser(), dataset_config_name, split, image_column, class_column, cache_dir
        )
    else:
        check_hub_id(dataset_name)
        dataset = load_hub_dataset(dataset_name, dataset_config_name, split, cache_dir)
        source = source_from_dataset(dataset, f"Hub dataset {dataset_name} ({split})", image_column, class_column)
    if source.pixels is not None:
        _check_array_columns(source, image_column, class_column)
    return source


def _looks_local(name: str) -> bool:
    """Local when it exists or is written like a path (Hub ids have at most one '/')."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def _load_local(path: Path, config_name, split, image_column, class_column, cache_dir) -> ImageSource:
    if not path.exists():
        raise DataError(
            f"{path} does not exist; pass an existing folder (or leave the dataset flags out for the embedded digits)"
        )
    if find_npy_pair(path) is not None:
        return _array_source(partial(load_npy_source, path), split, config_name)
    if path.is_dir() and has_idx_files(path):
        return _array_source(partial(load_idx_source, path), split, config_name)
    dataset = load_hub_dataset(str(path), config_name, split, cache_dir)
    return source_from_dataset(dataset, f"folder {path} ({split})", image_column, class_column)


def _array_source(loader, split, config_name) -> ImageSource:
    if config_name:
        raise DataError(f"--dataset_config_name '{config_name}' only applies to datasets read by `datasets`; drop it")
    return loader(split)


def _check_array_columns(source: ImageSource, image_column, class_column) -> None:
    """Array sources have exactly the columns "image" and "label"."""
    if image_column not in (None, "image"):
        raise DataError(
            f"{source.source} has only the image column 'image', not '{image_column}'; drop --image_column"
        )
    if class_column not in (None, "label"):
        raise DataError(
            f"{source.source} has only the label column 'label', not '{class_column}'; use --class_column label"
        )
    if class_column and source.labels is None:
        raise DataError(
            f"{source.source} has no labels but --class_column asks for them; add the sprite_labels_*.npy file "
            "beside the sprites or leave --class_column out to train without labels"
        )
