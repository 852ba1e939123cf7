"""A small CNN that classifies images of one dataset, used as an offline feature extractor.

Inception features need weights from the internet. For small domains (16x16 sprites, 28x28 clothes) a
classifier trained on the reference dataset's own labels gives features that know what matters in
that domain, and it trains in seconds on a CPU. Its penultimate layer is the feature space for
"domain FID"; its predictions give class-conditional accuracy.

Example:
    >>> import torch
    >>> from hf_sprites.evaluation.domain_classifier import ClassifierRecipe, train_domain_classifier
    >>> images = torch.rand(64, 3, 16, 16) * 2 - 1
    >>> labels = torch.arange(64) % 2
    >>> clf = train_domain_classifier(images, labels, ClassifierRecipe(epochs=1, feature_dim=8))
    >>> clf.features(images).shape
    torch.Size([64, 8])
    >>> clf.predict(images[:3]).shape
    torch.Size([3])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


@dataclass(frozen=True)
class ClassifierRecipe:
    """Hyperparameters of the domain classifier; all of them enter the cache key."""

    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    feature_dim: int = 64
    random_flip: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class DomainClassifier(ModelMixin, ConfigMixin):
    """Conv net: three stages (two 3x3 convs each, widths w, 2w, 4w), global average pool, a
    `feature_dim` embedding (the features) and a linear class head.

    Args:
        in_channels: image channels (1 or 3).
        num_classes: number of classes of the reference labels.
        sample_size: image side the classifier was trained at; inputs must match it.
        width: channels of the first stage.
        feature_dim: size of the penultimate layer, i.e. of the FID feature vectors.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, num_classes: int = 5, sample_size: int = 16, width: int = 16,
                 feature_dim: int = 64):
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        self.stages = nn.ModuleList()
        previous = in_channels
        for w in widths:
            self.stages.append(nn.Sequential(_conv_block(previous, w), _conv_block(w, w)))
            previous = w
        self.embed = nn.Sequential(nn.Linear(previous, feature_dim), nn.GELU())
        self.head = nn.Linear(feature_dim, num_classes)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (with gradients; use `features` for evaluation)."""
        h = images
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i < len(self.stages) - 1:
                h = F.max_pool2d(h, 2)
        return self.embed(h.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.embed_images(images))

    def check_images(self, images: torch.Tensor) -> None:
        """Raise one clear error when `images` do not fit this classifier."""
        expected = (self.config.in_channels, self.config.sample_size, self.config.sample_size)
        if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != expected:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(
                f"The domain classifier expects images of shape (N, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"in [-1, 1], got {shape}. Generate samples at the reference resolution/channels "
                "(or build the reference with the same resolution and channels as the model)."
            )

    @torch.no_grad()
    def _map_batches(self, fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        self.check_images(images)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        try:
            outs = [fn(chunk.to(device, torch.float32)).float().cpu() for chunk in images.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(outs) if outs else torch.empty(0)

    def features(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Penultimate-layer features (N, feature_dim) in eval mode, on the CPU."""
        return self._map_batches(self.embed_images, images, batch_size)

    def logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class logits (N, num_classes) in eval mode, on the CPU."""
        return self._map_batches(self.forward, images, batch_size)

    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Predicted class index (N,) int64."""
        return self.logits(images, batch_size).argmax(dim=1)


def class_indices(labels: torch.Tensor, num_images: int) -> torch.Tensor:
    """Int64 (N,) class indices from int (N,) labels or one-hot float (N, K) labels."""
    labels = torch.as_tensor(labels)
    if labels.shape[:1] != (num_images,):
        raise ValueError(
            f"Got {num_images} images but labels of shape {tuple(labels.shape)}: pass one label per image."
        )
    if labels.dim() == 2:
        hot = labels > 0.5
        if not bool((hot.sum(dim=1) == 1).all()):
            raise ValueError(
                "The domain classifier needs exactly one class per image, but some label rows are not one-hot "
                "(multi-hot or empty). Pass int class labels (N,) or one-hot rows."
            )
        return hot.float().argmax(dim=1)
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(
            f"Labels must be int64 (N,) class indices or one-hot float (N, K), got {labels.dtype} {tuple(labels.shape)}."
        )
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("Labels contain negative class indices; labels must be 0..num_classes-1.")
    return labels.long()


def prepare_training_data(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate training data; return (float32 CPU images, int64 targets, num_classes)."""
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(
            "Training images must be a float tensor (N, C, H, H) in [-1, 1]; "
            "build them with hf_sprites.data.to_tensors(source, build_transform(...))."
        )
    if images.shape[0] < 2:
        raise ValueError("The domain classifier needs at least 2 labelled images to train.")
    targets = class_indices(labels, images.shape[0])
    if num_classes is None:
        labels = torch.as_tensor(labels)
        num_classes = labels.shape[1] if labels.dim() == 2 else int(targets.max()) + 1
    if int(targets.max()) >= num_classes:
        raise ValueError(
            f"Label {int(targets.max())} is out of range for num_classes={num_classes}; pass the dataset's num_classes."
        )
    return images.detach().to("cpu", torch.float32).contiguous(), targets, int(num_classes)


def train_domain_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: ClassifierRecipe | None = None,
    num_classes: int | None = None,
) -> DomainClassifier:
    """Train a `DomainClassifier` on CPU, deterministically for `recipe.seed`.

    Args:
        images: float (N, C, H, H) in [-1, 1].
        labels: int64 (N,) or one-hot float (N, K).
        recipe: hyperparameters (defaults: `ClassifierRecipe()`).
        num_classes: number of classes; default max label + 1 (or K for one-hot labels).

    Returns:
        The trained classifier in eval mode. Its training accuracy is in `clf.train_accuracy`.
    """
    recipe = recipe or ClassifierRecipe()
    images, targets, num_classes = prepare_training_data(images, labels, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = DomainClassifier(images.shape[1], num_classes, images.shape[2], recipe.width, recipe.feature_dim)
    _fit(model, images, targets, recipe)
    model.eval()
    model.train_accuracy = float((model.predict(images) == targets).float().mean())
    return model


def _fit(model: DomainClassifier, images: torch.Tensor, targets: torch.Tensor, recipe: ClassifierRecipe) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = max(1, math.ceil(images.shape[0] / recipe.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.learning_rate, total_steps=recipe.epochs * steps_per_epoch
    )
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for index in order.split(recipe.batch_size):
            if index.numel() < 2:  # BatchNorm needs two samples
                continue
            batch = images[index]
            if recipe.random_flip:
                flip = torch.rand(batch.shape[0], generator=generator) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
            loss = F.cross_entropy(model(batch), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
