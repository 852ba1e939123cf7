"""Training data for hf_sprites: load any supported image source, preprocess it, batch it.

Knows no model: it hands training float tensors in [-1, 1] plus labels.

Example:
    >>> from hf_sprites.data import DeviceBatcher, build_transform, load_images, to_tensors
    >>> source = load_images()  # embedded scikit-learn digits; or dataset_name= / train_data_dir=
    >>> images, labels = to_tensors(source, build_transform(16, channels=1, interpolation="bilinear"))
    >>> images, labels = next(iter(DeviceBatcher(images, labels, batch_size=64, seed=0)))
    >>> tuple(images.shape), float(images.min()) >= -1.0
    ((64, 1, 16, 16), True)
"""

from .device_cache import DEVICE_CACHE_MAX_BYTES, DeviceBatcher, fits_device_cache, to_tensors
from .errors import DataError, HubUnreachableError
from .item_dataset import ItemDataset
from .labels import validate_labels
from .load import load_images
from .reading import check_images
from .source import ImageSource
from .transforms import ImageTransform, build_transform

__all__ = [
    "DEVICE_CACHE_MAX_BYTES",
    "DataError",
    "DeviceBatcher",
    "HubUnreachableError",
    "ImageSource",
    "ImageTransform",
    "ItemDataset",
    "build_transform",
    "check_images",
    "fits_device_cache",
    "load_images",
    "to_tensors",
    "validate_labels",
]
