"""Load one split of a dataset with `datasets` (a Hub id or a `load_dataset`-able folder).

The split is checked against the dataset's metadata before anything is downloaded, and the errors
that `datasets` / `huggingface_hub` raise are turned into one `DataError` that says what to do:
an unreachable Hub becomes a `HubUnreachableError` that lists the offline options.

Example:
    >>> from hf_sprites.data.hub import load_hub_dataset
    >>> train = load_hub_dataset("../shared/data/crawl-sprites", split="train")  # doctest: +SKIP
    >>> train.num_rows  # doctest: +SKIP
    2286
"""

import re
from contextlib import contextmanager

import datasets
from datasets.data_files import EmptyDatasetError
from datasets.exceptions import DataFilesNotFoundError
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from .errors import DataError, HubUnreachableError

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
