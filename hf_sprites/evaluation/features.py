"""Feature extractors for FID/KID: a protocol, the offline domain extractor and Inception-v3.

Any object with `name`, `feature_dim` and `__call__(images) -> (N, D)` works as an extractor;
images are float tensors (N, C, H, W) in [-1, 1].

Example:
    >>> import torch
    >>> from hf_sprites.evaluation.domain_classifier import ClassifierRecipe, train_domain_classifier
    >>> from hf_sprites.evaluation.features import DomainFeatures
    >>> images, labels = torch.rand(32, 3, 8, 8) * 2 - 1, torch.arange(32) % 2
    >>> extractor = DomainFeatures(train_domain_classifier(images, labels, ClassifierRecipe(epochs=1, feature_dim=4)))
    >>> extractor(images).shape, extractor.feature_dim
    (torch.Size([32, 4]), 4)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from .domain_classifier import DomainClassifier

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
INCEPTION_DIMS = (64, 192, 768, 2048)


@runtime_checkable
class FeatureExtractor(Protocol):
    """What FID/KID need from a feature extractor."""

    name: str
    feature_dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Map float images (N, C, H, W) in [-1, 1] to features (N, feature_dim)."""


class DomainFeatures:
    """Penultimate-layer features of a `DomainClassifier` (offline, domain-specific)."""

    name = "domain"

    def __init__(self, classifier: DomainClassifier, batch_size: int = 512):
        self.classifier = classifier
        self.batch_size = batch_size
        self.feature_dim = int(classifier.config.feature_dim)

    def check_images(self, images: torch.Tensor) -> None:
        self.classifier.check_images(images)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images, self.batch_size)


def default_inception_weights_path() -> Path:
    """Where torch-fidelity/torchmetrics keep the FID Inception weights (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


class InceptionFeatures:
    """Inception-v3 pool features via torch-fidelity (used by torchmetrics), from weights on disk.

    Both the package (`pip install torch-fidelity`, or `torchmetrics[image]`) and the weights file are
    optional and never downloaded here: without them this raises one error saying what is missing
    and to use the offline domain extractor instead.

    Args:
        feature_dim: one of 64, 192, 768, 2048 (the standard FID layer).
        weights_path: the `.pth` file; default `default_inception_weights_path()`.
        device: where to run the network (default: CUDA when available).
        batch_size: images per forward pass (they are resized to 299x299 inside).
    """

    name = "inception"

    def __init__(self, feature_dim: int = 2048, weights_path=None, device=None, batch_size: int = 64):
        if feature_dim not in INCEPTION_DIMS:
            raise ValueError(f"Inception feature_dim must be one of {INCEPTION_DIMS}, got {feature_dim}.")
        path = Path(weights_path) if weights_path else default_inception_weights_path()
        extractor_cls = _import_inception()
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception weights are not available offline: {path} does not exist. Download "
                f"{INCEPTION_WEIGHTS_URL} there on a machine with internet access, or use the offline domain "
                "extractor (features='domain', CLI --features domain)."
            )
        self.feature_dim = feature_dim
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = extractor_cls("inception-v3-compat", [str(feature_dim)], feature_extractor_weights_path=os.fspath(path))
        self.network.to(self.device).eval()

    def check_images(self, images: torch.Tensor) -> None:
        if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError("Inception features need float images (N, 1 or 3, H, W) in [-1, 1].")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        outs = []
        for chunk in images.split(self.batch_size):
            pixels = ((chunk.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            pixels = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
            outs.append(self.network(pixels.to(self.device))[0].float().cpu())
        return torch.cat(outs)


def _import_inception():
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as err:
        raise ImportError(
            "Inception features need the optional package torch-fidelity (`pip install torch-fidelity` or "
            "`pip install torchmetrics[image]`) and its weights on disk; they are not available offline here. "
            "Use the offline domain extractor instead (features='domain', CLI --features domain)."
        ) from err
    return FeatureExtractorInceptionV3
