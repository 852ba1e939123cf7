"""Small datasets as one tensor on the training device, batched by indexing.

`to_tensors` preprocesses every image once; `DeviceBatcher` then draws shuffled batches with a single
index operation each: no per-item Python, no DataLoader workers. Its state (epoch, position and the
seed that fixes every epoch's order and flips) goes into checkpoints, so a resumed run continues from
the same place in the data.

Example:
    >>> import torch
    >>> from hf_sprites.data import DeviceBatcher, build_transform, load_images, to_tensors
    >>> images, labels = to_tensors(load_images(), build_transform(8, channels=1))
    >>> images.shape, labels.dtype
    (torch.Size([1797, 1, 8, 8]), torch.int64)
    >>> batcher = DeviceBatcher(images, labels, batch_size=100, seed=0, random_flip=True)
    >>> len(batcher), next(iter(batcher))[0].shape
    (17, torch.Size([100, 1, 8, 8]))
"""

import math

import numpy as np
import torch

from .errors import DataError
from .reading import iter_images
from .source import ImageSource

DEVICE_CACHE_MAX_BYTES = 2 * 1024**3


def fits_device_cache(num_items: int, channels: int, resolution: int, max_bytes: int = DEVICE_CACHE_MAX_BYTES) -> bool:
    """True when `num_items` float32 images of that size fit in `max_bytes` (default 2 GiB)."""
    return num_items * channels * resolution * resolution * 4 <= max_bytes


def to_tensors(source: ImageSource, transform, max_items: int | None = None):
    """Preprocess the first `max_items` images (all by default) in one pass.

    Returns `(images, labels)`: images float32 `(N, C, H, W)`, labels int64 `(N,)`, float32 `(N, K)` or None.
    Array-backed sources skip PIL where the transform can promise the same result (`from_pixels`).
    """
    if not getattr(transform, "deterministic", True):
        raise DataError(
            "to_tensors needs a deterministic transform: build it with random_flip=False "
            "and flip in DeviceBatcher(random_flip=True)"
        )
    count = len(source) if max_items is None else min(max_items, len(source))
    images = None
    if source.pixels is not None and hasattr(transform, "from_pixels"):
        images = transform.from_pixels(source.pixels[:count])
    if images is None:
        images = _transform_each(source, transform, count)
    labels = None if source.labels is None else torch.from_numpy(source.labels[:count].copy())
    return images, labels


def _transform_each(source: ImageSource, transform, count: int) -> torch.Tensor:
    images = None
    for index, image in iter_images(source, count):
        tensor = transform(image)
        if images is None:
            images = torch.empty((count, *tensor.shape), dtype=tensor.dtype)
        images[index] = tensor
    return images


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on `(seed, epoch)`."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]))


class DeviceBatcher:
    """Shuffled batches of `(images, labels)` from tensors kept on `device`.

    Iterating yields the rest of the current epoch, then moves to the next one. With several processes
    (`num_processes`, `process_index`, all with the same seed) each takes its own slice of every
    global batch. `state_dict()` / `load_state_dict()` carry the position between runs.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        seed,
        random_flip=False,
        drop_last=True,
        device=None,
        *,
        num_processes=1,
        process_index=0,
    ):
        if labels is not None and len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels; give one label per image")
        self.images = images if device is None else images.to(device)
        self.labels = labels if device is None or labels is None else labels.to(device)
        self.batch_size, self.seed, self.random_flip, self.drop_last = batch_size, seed, random_flip, drop_last
        self.num_processes, self.process_index = num_processes, process_index
        self.epoch, self.position = 0, 0
        if batch_size < 1 or num_processes < 1 or len(self) == 0:
            raise DataError(
                f"{len(images)} images make no batch of {batch_size} x {num_processes} processes; "
                "lower --train_batch_size (or keep the last partial batch with drop_last=False)"
            )

    def __len__(self) -> int:
        """Batches per epoch."""
        count = len(self.images) / max(self.batch_size * self.num_processes, 1)
        return int(count) if self.drop_last else math.ceil(count)

    def __iter__(self):
        epoch, order, flips = self.epoch, *self._epoch_plan(self.epoch)
        for step in range(self.position, len(self)):
            batch = self._batch(order, flips, step)
            self.epoch, self.position = (epoch + 1, 0) if step + 1 == len(self) else (epoch, step + 1)
            yield batch

    def _epoch_plan(self, epoch: int):
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(len(self.images), generator=generator)
        flips = torch.rand(len(self.images), generator=generator) < 0.5
        return order.to(self.images.device), flips.to(self.images.device)

    def _batch(self, order, flips, step):
        start = (step * self.num_processes + self.process_index) * self.batch_size
        index = order[start : start + self.batch_size]
        images = self.images[index]
        if self.random_flip:
            flip = flips[start : start + self.batch_size].view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
        return images, None if self.labels is None else self.labels[index]

    def state_dict(self) -> dict:
        """Where the next batch comes from: epoch, position in it, and what fixes each epoch's order."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_items": len(self.images),
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`; the data and batch size must be the ones it was made with."""
        if state["num_items"] != len(self.images) or state["batch_size"] != self.batch_size:
            raise DataError(
                f"the checkpoint's data position was made with {state['num_items']} images in batches of "
                f"{state['batch_size']}, this run has {len(self.images)} in batches of {self.batch_size}; "
                "resume with the same data and --train_batch_size"
            )
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
