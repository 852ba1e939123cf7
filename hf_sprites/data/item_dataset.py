"""The per-item path for datasets too large to keep on the device: a torch `Dataset` for a `DataLoader`.

Example:
    >>> from torch.utils.data import DataLoader
    >>> from hf_sprites.data import ItemDataset, build_transform, load_images
    >>> items = ItemDataset(load_images(), build_transform(16, channels=3, interpolation="bilinear", random_flip=True))
    >>> loader = DataLoader(items, batch_size=8, shuffle=True, collate_fn=ItemDataset.collate)
    >>> images, labels = next(iter(loader))
    >>> images.shape, labels.shape
    (torch.Size([8, 3, 16, 16]), torch.Size([8]))
"""

import torch
from torch.utils.data import Dataset

from .reading import read_image
from .source import ImageSource


class ItemDataset(Dataset):
    """Item `i` is `(transform(image_i), label_i)`; the label is None for unlabelled sources.

    Call `hf_sprites.data.reading.check_images(source)` before training to find unreadable images up
    front; a broken image met here still raises `DataError` naming its row.
    """

    def __init__(self, source: ImageSource, transform):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image = self.transform(read_image(self.source, index))
        label = None if self.source.labels is None else torch.as_tensor(self.source.labels[index])
        return image, label

    @staticmethod
    def collate(items):
        """Stack `(image, label)` items into `(images, labels or None)`, the shape `DeviceBatcher` yields."""
        images = torch.stack([image for image, _ in items])
        labels = [label for _, label in items]
        return images, None if labels[0] is None else torch.stack(labels)
