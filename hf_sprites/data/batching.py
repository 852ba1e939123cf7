"""Training batches: one shuffling, sharding, flipping and resume design for on-device tensors and per-item loading.

`Batches` owns everything about order: epoch `e` visits the items in `torch.randperm` order drawn from a
generator seeded with `seed + e`, which also draws one horizontal-flip decision per position. With
`sample_weights` (`balanced_weights`: every class equally likely) an epoch instead draws as many items, with
replacement, in proportion to their weights, so a rare class comes up as often as a common one. With several
processes each takes every `num_processes`-th item of that order (equal shares, so all stay in step), then
cuts its share into batches. `state_dict()` records the epoch, the position in it, the batch size, the
process count, whether items are drawn by weight, and a fingerprint of the data (item count + a checksum of the
first and last items), and
`load_state_dict()` refuses a state made with other data or other batches.

Two subclasses differ only in how a batch of item indices becomes tensors:

- `DeviceBatcher`: the whole preprocessed dataset (`to_tensors`) as one tensor on the training device; a
  batch is one index operation, with no per-item Python in the hot loop. For data that fits
  `DEVICE_CACHE_MAX_BYTES` (2 GiB of float32).
- `ItemBatches`: an `ItemDataset` (read + transform one image at a time) through a `DataLoader`, for
  larger data, and for non-square images under a random crop: the place of each item's crop is drawn per
  epoch from its own seeded generator (`epoch_crops`), so it too is the same on resume.

Given the same seed and data they yield the same items, flips and labels. Labels come as the data holds
them: class indices int64 `(B,)` or float label vectors `(B, K)`, or None for unlabelled data.

Example:
    >>> from hf_sprites.data import DeviceBatcher, build_transform, load_images, to_tensors
    >>> images, labels = to_tensors(load_images(), build_transform(8, channels=1))
    >>> batches = DeviceBatcher(images, labels, batch_size=100, seed=0, random_flip=True)
    >>> len(batches), next(iter(batches))[0].shape, batches.position
    (17, torch.Size([100, 1, 8, 8]), 1)
"""

import logging
import math
import zlib
from abc import ABC, abstractmethod

import torch
from torch.utils.data import DataLoader, Dataset

from .image_source import DataError, ImageSource, check_images, read_image
from .transforms import CropRoomError, make_transform, to_tensors

logger = logging.getLogger(__name__)

DEVICE_CACHE_MAX_BYTES = 2 * 1024**3
CROP_STREAM = 2**32  # crop places come from generators seeded apart from the epoch order's


def fits_device_cache(num_items: int, channels: int, resolution: int, max_bytes: int = DEVICE_CACHE_MAX_BYTES) -> bool:
    """True when `num_items` float32 images of that size fit in `max_bytes` (default 2 GiB)."""
    return num_items * channels * resolution * resolution * 4 <= max_bytes


def epoch_plan(num_items: int, seed: int, epoch: int, weights: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(order, flips)` of one epoch: the items to visit and a flip decision per position.

    Without `weights` the order is a permutation of the items; with them (one per item) it is `num_items` draws
    with replacement, each item drawn in proportion to its weight.

    Example:
        >>> order, flips = epoch_plan(5, seed=0, epoch=1)
        >>> sorted(order.tolist()), flips.dtype
        ([0, 1, 2, 3, 4], torch.bool)
        >>> epoch_plan(5, seed=0, epoch=1, weights=torch.tensor([0.0, 0, 0, 0, 1]))[0].tolist()
        [4, 4, 4, 4, 4]
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    if weights is None:
        order = torch.randperm(num_items, generator=generator)
    else:
        order = torch.multinomial(weights, num_items, replacement=True, generator=generator)
    return order, torch.rand(num_items, generator=generator) < 0.5


def balanced_weights(labels) -> torch.Tensor:
    """Per-item draw weights that make every class equally likely: one over the number of items of its class.

    `labels` are class indices `(N,)` or one-hot label vectors `(N, K)`; label vectors that mix classes (or
    hold none) have no single class to balance, and raise `DataError`.

    Example:
        >>> balanced_weights([0, 0, 0, 1]).tolist()
        [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0]
    """
    labels = torch.as_tensor(labels)
    if labels.ndim == 2:
        if not (((labels == 0) | (labels == 1)).all() and (labels.sum(1) == 1).all()):
            raise DataError("--balance_classes draws every class equally often, so it needs one class per image, but "
                            "these label vectors mix classes or hold none; drop --balance_classes")
        labels = labels.argmax(1)
    return 1.0 / torch.bincount(labels)[labels].double()


def epoch_crops(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """`(num_items, 2)` crop places (top, left fractions) of one epoch, by item, from their own seeded generator.

    Example:
        >>> epoch_crops(3, seed=0, epoch=1).shape
        torch.Size([3, 2])
    """
    generator = torch.Generator().manual_seed(CROP_STREAM + seed + epoch)
    return torch.rand(num_items, 2, generator=generator)


def shard(tensor: torch.Tensor, process_index: int, num_processes: int) -> torch.Tensor:
    """Items `process_index::num_processes` of the first `num_processes * (N // num_processes)` items.

    Equal shares keep every process at the same position; batch `s` of all processes together is items
    `s * batch_size * num_processes` onwards of the unsharded order, as one process would see them.

    Example:
        >>> shard(torch.arange(10), process_index=1, num_processes=3).tolist()
        [1, 4, 7]
    """
    usable = (len(tensor) // num_processes) * num_processes
    return tensor[process_index:usable:num_processes]


class Batches(ABC):
    """Shuffled batches of `(images, labels)` on `device`; iterating yields the rest of the current epoch.

    Subclasses say how many items there are and how items become tensors; everything else is shared.
    Attributes `epoch` and `position` (batches of the current epoch already yielded) say where the next
    batch comes from; `len()` is the number of batches per epoch and process.
    """

    STATE_DEFAULTS = {"balanced": False}  # what a state saved before a key existed meant

    def __init__(self, batch_size, seed, *, random_flip=False, drop_last=True, device=None, num_processes=1,
                 process_index=0, sample_weights=None):
        self.batch_size, self.seed, self.random_flip, self.drop_last = batch_size, seed, random_flip, drop_last
        self.sample_weights = sample_weights
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.num_processes, self.process_index = num_processes, process_index
        self.epoch, self.position, self._fingerprint = 0, 0, None
        if batch_size < 1 or num_processes < 1 or len(self) == 0:
            raise DataError(
                f"{self.num_items} images make no batch of {batch_size} x {num_processes} processes; "
                "lower --train_batch_size (or keep the last partial batch with drop_last=False)"
            )
        if not 0 <= process_index < num_processes:
            raise DataError(f"process_index {process_index} is not one of the {num_processes} processes")
        if sample_weights is not None and len(sample_weights) != self.num_items:
            raise DataError(f"{len(sample_weights)} sample weights for {self.num_items} images; give one per image")

    @property
    @abstractmethod
    def num_items(self) -> int:
        """How many items an epoch shuffles."""

    @abstractmethod
    def _item(self, index: int):
        """`(image, label or None)` of item `index`, as a batch would hold it (used for the fingerprint)."""

    @abstractmethod
    def _load(self, order: torch.Tensor):
        """Yield `(images, labels)` on the device for consecutive `batch_size` slices of `order` (CPU)."""

    def __len__(self) -> int:
        """Batches per epoch and process."""
        share = self.num_items // self.num_processes
        return share // self.batch_size if self.drop_last else math.ceil(share / self.batch_size)

    def process_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of `epoch_plan`: `(order, flips)`, batch `s` at `[s * batch_size:][:batch_size]`."""
        order, flips = epoch_plan(self.num_items, self.seed, epoch, self.sample_weights)
        index, count = self.process_index, self.num_processes
        return shard(order, index, count), shard(flips, index, count)

    def __iter__(self):
        epoch, first = self.epoch, self.position
        order, flips = self.process_plan(epoch)
        kept = slice(first * self.batch_size, len(self) * self.batch_size)
        flips = flips[kept].to(self.device).split(self.batch_size)
        for step, (images, labels) in enumerate(self._load(order[kept]), first):
            if self.random_flip:
                images = torch.where(flips[step - first].view(-1, 1, 1, 1), images.flip(-1), images)
            self.epoch, self.position = (epoch + 1, 0) if step + 1 == len(self) else (epoch, step + 1)
            yield images, labels

    def fingerprint(self) -> str:
        """A cheap checksum of the data: the first and last items' pixels and labels."""
        if self._fingerprint is None:
            checksum = 0
            for index in sorted({0, self.num_items - 1}):
                for tensor in self._item(index):
                    if tensor is not None:
                        checksum = zlib.crc32(tensor.detach().cpu().contiguous().numpy().tobytes(), checksum)
            self._fingerprint = f"{checksum:08x}"
        return self._fingerprint

    def _made_with(self) -> dict:
        return {"num_items": self.num_items, "fingerprint": self.fingerprint(), "batch_size": self.batch_size,
                "num_processes": self.num_processes, "balanced": self.sample_weights is not None}

    def state_dict(self) -> dict:
        """Where the next batch comes from (epoch, position, seed) and what that position means (the data, batches)."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, **self._made_with()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()`; the data, batch size and process count must be the ones it was made with."""
        current = self._made_with()
        recorded = {key: state.get(key, self.STATE_DEFAULTS.get(key)) for key in current}
        if recorded != current:
            raise DataError(
                f"the checkpoint's data position was made with {_describe(recorded)}, this run has "
                f"{_describe(current)}; resume with the same data, --train_batch_size and --balance_classes (and as "
                "many processes)"
            )
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])


def _describe(made_with: dict) -> str:
    drawn = " drawn class-balanced" if made_with["balanced"] else ""
    return (f"{made_with['num_items']} images (fingerprint {made_with['fingerprint']}){drawn} in batches of "
            f"{made_with['batch_size']} x {made_with['num_processes']} processes")


class DeviceBatcher(Batches):
    """`Batches` from `images` `(N, C, H, W)` and `labels` (`(N,)`, `(N, K)` or None) kept on `device`.

    `device=None` keeps the tensors where they are.
    """

    def __init__(self, images, labels, batch_size, seed, random_flip=False, drop_last=True, device=None, *,
                 num_processes=1, process_index=0, sample_weights=None):
        if labels is not None and len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels; give one label per image")
        self.images = images if device is None else images.to(device)
        self.labels = labels if labels is None else labels.to(self.images.device)
        super().__init__(batch_size, seed, random_flip=random_flip, drop_last=drop_last, device=self.images.device,
                         num_processes=num_processes, process_index=process_index, sample_weights=sample_weights)

    @property
    def num_items(self) -> int:
        return len(self.images)

    def _item(self, index: int):
        return self.images[index], None if self.labels is None else self.labels[index]

    def _load(self, order: torch.Tensor):
        for index in order.to(self.device).split(self.batch_size):
            yield self.images[index], None if self.labels is None else self.labels[index]


class ItemDataset(Dataset):
    """Item `i` is `(transform(image_i), label_i)` of the first `max_items` images; labels None when unlabelled.

    Call `check_images(source)` before training to find unreadable images up front; a broken image met
    here still raises `DataError` naming its row.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from hf_sprites.data import ItemDataset, build_transform, load_images
        >>> items = ItemDataset(load_images(), build_transform(16, channels=3, interpolation="bilinear"))
        >>> images, labels = next(iter(DataLoader(items, batch_size=8, collate_fn=ItemDataset.collate)))
        >>> images.shape, labels.shape
        (torch.Size([8, 3, 16, 16]), torch.Size([8]))
    """

    def __init__(self, source: ImageSource, transform, max_items: int | None = None):
        self.source, self.transform = source, transform
        self.count = len(source) if max_items is None else min(max_items, len(source))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        """Item `index`, or `(index, top, left)`: the item with its random crop cut at those fractions."""
        index, crop_at = (index[0], index[1:]) if isinstance(index, tuple) else (index, None)
        image = read_image(self.source, index)
        image = self.transform(image) if crop_at is None else self.transform(image, crop_at=crop_at)
        label = None if self.source.labels is None else torch.as_tensor(self.source.labels[index])
        return image, label

    @staticmethod
    def collate(items):
        """Stack `(image, label)` items into `(images, labels or None)`."""
        images = torch.stack([image for image, _ in items])
        labels = [label for _, label in items]
        return images, None if labels[0] is None else torch.stack(labels)


class ItemBatches(Batches):
    """`Batches` that read and transform each item of `dataset` (an `ItemDataset`) in a `DataLoader`."""

    def __init__(self, dataset, batch_size, seed, random_flip=False, drop_last=True, device=None, *,
                 num_processes=1, process_index=0, num_workers=0, sample_weights=None):
        self.dataset, self.num_workers, self._crops = dataset, num_workers, None
        super().__init__(batch_size, seed, random_flip=random_flip, drop_last=drop_last, device=device,
                         num_processes=num_processes, process_index=process_index, sample_weights=sample_weights)

    @property
    def num_items(self) -> int:
        return len(self.dataset)

    def _item(self, index: int):
        return self.dataset[index]

    def process_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`Batches.process_plan`; also draws the epoch's crop places when the transform crops at random."""
        random_crop = getattr(self.dataset.transform, "random_crop", False)
        self._crops = epoch_crops(self.num_items, self.seed, epoch) if random_crop else None
        return super().process_plan(epoch)

    def _load(self, order: torch.Tensor):
        batches = [index.tolist() for index in order.split(self.batch_size)]
        if self._crops is not None:
            batches = [[(i, *self._crops[i].tolist()) for i in batch] for batch in batches]
        # its own generator: creating the loader leaves the global RNG (training noise) untouched
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            collate_fn=ItemDataset.collate, generator=torch.Generator().manual_seed(self.seed))
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True)
            yield images, None if labels is None else labels.to(self.device, non_blocking=True)


def make_batches(cfg, source: ImageSource, accelerator, channels: int) -> Batches:
    """The batches of a training run: on the device when the data fits (`cfg.cache_on_device`), else per item.

    `cfg` is any object with the data flags `train_batch_size`, `seed`, `random_flip`, `balance_classes`,
    `max_train_samples`,
    `cache_on_device` ("auto": by size, "always", "never"), `dataloader_num_workers` and those of
    `make_transform`; `accelerator` gives `device`, `num_processes` and `process_index`.
    """
    transform = make_transform(cfg, channels)
    num_items = min(len(source), cfg.max_train_samples or len(source))
    options = {"batch_size": cfg.train_batch_size, "seed": cfg.seed or 0, "random_flip": cfg.random_flip,
               "device": accelerator.device, "num_processes": accelerator.num_processes,
               "process_index": accelerator.process_index,
               "sample_weights": balanced_weights(source.labels[:num_items]) if cfg.balance_classes else None}
    if keeps_on_device(cfg.cache_on_device, num_items, channels, cfg.resolution):
        try:
            images, labels = to_tensors(source, transform, max_items=num_items)
            return DeviceBatcher(images, labels, **options)
        except CropRoomError as err:
            if cfg.cache_on_device == "always":
                raise DataError(f"--cache_on_device always cannot hold randomly cropped images: {err}") from None
            logger.info("Loading the images one by one: %s", err)
    check_images(source, num_items)
    return ItemBatches(ItemDataset(source, transform, num_items), num_workers=cfg.dataloader_num_workers, **options)


def keeps_on_device(cache_on_device: str, num_items: int, channels: int, resolution: int) -> bool:
    """Whether `make_batches` keeps the preprocessed images on the device ("auto": when they fit the device cache)."""
    if cache_on_device != "auto":
        return cache_on_device == "always"
    return fits_device_cache(num_items, channels, resolution)
