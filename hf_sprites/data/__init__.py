"""Training data for hf_sprites: load any supported image source, preprocess it, batch it.

Knows no model: it hands training float tensors in [-1, 1] plus the labels as the data holds them.

Modules, one idea each: `sources` (`load_images`, the entry point), `image_source` (`ImageSource`, label
checks, reading images, `DataError`), `formats` (embedded digits, the course's `.npy` pair, IDX files),
`hub` (Hub ids and folders read by `datasets`: split, columns, `HubUnreachableError`), `transforms`
(preprocessing), `batching` (one shuffling / sharding / flipping / resume design for both batch paths).

Example:
    >>> from hf_sprites.data import DeviceBatcher, build_transform, load_images, to_tensors
    >>> source = load_images()  # embedded scikit-learn digits; or dataset_name= / train_data_dir=
    >>> images, labels = to_tensors(source, build_transform(16, channels=1, interpolation="bilinear"))
    >>> images, labels = next(iter(DeviceBatcher(images, labels, batch_size=64, seed=0)))
    >>> tuple(images.shape), float(images.min()) >= -1.0
    ((64, 1, 16, 16), True)
"""

from .batching import (DEVICE_CACHE_MAX_BYTES, Batches, DeviceBatcher, ItemBatches, ItemDataset, balanced_weights,
                       fits_device_cache, keeps_on_device, make_batches)
from .hub import HubUnreachableError
from .image_source import DataError, ImageSource, check_images, validate_labels
from .sources import load_images
from .transforms import ImageTransform, build_transform, choose_channels, make_transform, to_tensors

__all__ = [
    "DEVICE_CACHE_MAX_BYTES",
    "Batches",
    "DataError",
    "DeviceBatcher",
    "HubUnreachableError",
    "ImageSource",
    "ImageTransform",
    "ItemBatches",
    "ItemDataset",
    "balanced_weights",
    "build_transform",
    "check_images",
    "choose_channels",
    "fits_device_cache",
    "keeps_on_device",
    "load_images",
    "make_batches",
    "make_transform",
    "to_tensors",
    "validate_labels",
]
