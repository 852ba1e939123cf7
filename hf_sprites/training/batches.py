"""Turn an `ImageSource` into training batches: device-resident for small data, per-item for large data.

Small datasets (the preprocessed float32 tensor fits `hf_sprites.data.DEVICE_CACHE_MAX_BYTES`, 2 GiB)
are transformed once and kept as one tensor on the training device (`hf_sprites.data.DeviceBatcher`):
a batch is an index, with no per-item Python in the hot loop. Larger ones go through `ItemBatches`, a
DataLoader over `hf_sprites.data.ItemDataset` with a seeded per-epoch order, so a resumed run continues
at the same item.

Both split the data across processes and expose the same interface: `len()` (batches per epoch),
`epoch`, iteration over the rest of the current epoch, and `state_dict()` / `load_state_dict()`.

Example:
    >>> import torch
    >>> from hf_sprites.training.batches import shard
    >>> shard(torch.arange(10), process_index=1, num_processes=3).tolist()
    [1, 4, 7]
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from hf_sprites.data import (DeviceBatcher, ItemDataset, build_transform, check_images, fits_device_cache,
                             to_tensors)


def shard(tensor: Optional[torch.Tensor], process_index: int, num_processes: int) -> Optional[torch.Tensor]:
    """Items `process_index::num_processes` of the first `num_processes * (N // num_processes)` items
    (equal shard sizes keep every process at the same position)."""
    if tensor is None or num_processes == 1:
        return tensor
    usable = (len(tensor) // num_processes) * num_processes
    return tensor[process_index:usable:num_processes]


def fits_on_device(cfg, num_items: int, channels: int) -> bool:
    """Whether `--cache_on_device` (auto: by size) keeps the whole preprocessed dataset on the device."""
    if cfg.cache_on_device != "auto":
        return cfg.cache_on_device == "always"
    return fits_device_cache(num_items, channels, cfg.resolution)


def make_transform(cfg, channels: int):
    """The deterministic preprocessing (resize, crop, RGBA background, channels, [-1, 1]); flips happen per batch."""
    return build_transform(
        cfg.resolution,
        channels,
        center_crop=cfg.center_crop,
        random_flip=False,
        interpolation=cfg.interpolation,
        background=tuple(cfg.background),
    )


def context_labels(labels: Optional[torch.Tensor], num_classes: Optional[int], label_mode: Optional[str]):
    """Labels in the form the step feeds the model, converted once: one-hot floats for "context", None if unused."""
    if label_mode is None or labels is None:
        return None
    if label_mode == "context" and not labels.is_floating_point():
        return F.one_hot(labels.long(), num_classes).float()
    return labels


def device_batches(cfg, source, accelerator, channels: int, label_mode: Optional[str]):
    """Preprocess every image once and serve batches from one tensor on `accelerator.device`."""
    images, labels = to_tensors(source, make_transform(cfg, channels), max_items=cfg.max_train_samples)
    return DeviceBatcher(
        images,
        context_labels(labels, source.num_classes, label_mode),
        batch_size=cfg.train_batch_size,
        seed=cfg.seed or 0,
        random_flip=cfg.random_flip,
        drop_last=True,
        device=accelerator.device,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
    )


class ItemBatches:
    """Per-item loading for datasets too large to keep on the device; resumable to the exact batch."""

    def __init__(self, dataset, batch_size: int, seed: int, accelerator, num_classes=None, label_mode=None,
                 random_flip=False, num_workers=0):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.accelerator, self.num_classes, self.label_mode = accelerator, num_classes, label_mode
        self.random_flip, self.num_workers = random_flip, num_workers
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return (len(self.dataset) // self.accelerator.num_processes) // self.batch_size

    def _order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator)
        order = shard(order, self.accelerator.process_index, self.accelerator.num_processes)
        return order[self.position * self.batch_size : len(self) * self.batch_size]

    def _to_device(self, batch):
        images, labels = batch
        images = images.to(self.accelerator.device, non_blocking=True)
        if self.random_flip:
            flip = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < 0.5
            images = torch.where(flip, images.flip(-1), images)
        labels = context_labels(labels, self.num_classes, self.label_mode)
        return images, None if labels is None else labels.to(self.accelerator.device)

    def __iter__(self):
        loader = DataLoader(Subset(self.dataset, self._order().tolist()), batch_size=self.batch_size,
                            num_workers=self.num_workers, drop_last=True, collate_fn=ItemDataset.collate)
        for batch in loader:
            self.position += 1
            yield self._to_device(batch)
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def item_batches(cfg, source, accelerator, channels: int, label_mode: Optional[str]) -> ItemBatches:
    check_images(source, cfg.max_train_samples)
    dataset = ItemDataset(source, make_transform(cfg, channels))
    if cfg.max_train_samples:
        dataset = Subset(dataset, range(min(cfg.max_train_samples, len(dataset))))
    return ItemBatches(dataset, cfg.train_batch_size, cfg.seed or 0, accelerator, source.num_classes, label_mode,
                       cfg.random_flip, cfg.dataloader_num_workers)


def make_batches(cfg, source, accelerator, channels: int, label_mode: Optional[str]):
    """The batch source for this run (see the module docstring for the choice)."""
    num_items = min(len(source), cfg.max_train_samples or len(source))
    if fits_on_device(cfg, num_items, channels):
        return device_batches(cfg, source, accelerator, channels, label_mode)
    return item_batches(cfg, source, accelerator, channels, label_mode)
