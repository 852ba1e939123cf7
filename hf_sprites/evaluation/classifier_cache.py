"""Disk cache for domain classifiers: train once per (data, labels, recipe), reuse afterwards.

The cache key is a SHA-256 of the image tensor, the class indices, the number of classes and the
training recipe, so a different split, resolution, background or seed gives a different classifier.
Each entry is a folder written by `DomainClassifier.save_pretrained` (safetensors + config.json)
plus `training.json`; it is written through `hf_sprites.atomic.atomic_folder`, so a half-written entry is never seen.

Example:
    >>> import torch, tempfile
    >>> from hf_sprites.evaluation.classifier_cache import load_or_train_domain_classifier
    >>> from hf_sprites.evaluation.domain_classifier import ClassifierRecipe
    >>> images, labels = torch.rand(32, 1, 8, 8) * 2 - 1, torch.arange(32) % 2
    >>> folder = tempfile.mkdtemp()
    >>> clf = load_or_train_domain_classifier(images, labels, ClassifierRecipe(epochs=1), cache_dir=folder)
    >>> again = load_or_train_domain_classifier(images, labels, ClassifierRecipe(epochs=1), cache_dir=folder)
    >>> again.cache_path == clf.cache_path
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from ..atomic import atomic_folder
from .domain_classifier import ClassifierRecipe, DomainClassifier, prepare_training_data, train_domain_classifier

CACHE_FORMAT = "hf_sprites-domain-classifier-v1"
TRAINING_FILE = "training.json"

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$HF_HOME/hf_sprites` when HF_HOME is set, else `~/.cache/hf_sprites`."""
    hf_home = os.environ.get("HF_HOME")
    root = Path(hf_home) / "hf_sprites" if hf_home else Path.home() / ".cache" / "hf_sprites"
    return root


def cache_key(images: torch.Tensor, targets: torch.Tensor, num_classes: int, recipe: ClassifierRecipe) -> str:
    """Hex SHA-256 of the data, labels and hyperparameters."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "shape": list(images.shape), "num_classes": num_classes, **recipe.to_dict()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(targets.to("cpu", torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _load_entry(folder: Path) -> DomainClassifier:
    try:
        model = DomainClassifier.from_pretrained(folder)
        meta = json.loads((folder / TRAINING_FILE).read_text())
    except (OSError, ValueError, KeyError) as err:
        raise RuntimeError(
            f"The cached domain classifier at {folder} cannot be read ({err}). Delete that folder to retrain it."
        ) from err
    model.eval()
    model.train_accuracy = meta["train_accuracy"]
    model.trained_with = meta.get("trained_with")  # None for entries cached before it was recorded
    model.cache_path = folder
    if model.trained_with is not None and model.trained_with != training_kernels():
        logger.warning(
            "The cached domain classifier at %s was trained with %s; this machine has %s. Its FIDs compare with "
            "those of the machine that trained it, not with a classifier trained here (delete that folder to retrain).",
            folder, model.trained_with, training_kernels(),
        )
    return model


def _save_entry(model: DomainClassifier, folder: Path, meta: dict) -> None:
    with atomic_folder(folder, replace=False) as staging:  # a concurrent writer that got there first wins
        model.save_pretrained(staging)
        (staging / TRAINING_FILE).write_text(json.dumps(meta, indent=2))
    if not (folder / TRAINING_FILE).is_file():
        raise RuntimeError(f"{folder} exists but holds no {TRAINING_FILE}; delete that folder to cache the classifier.")


def training_kernels() -> dict:
    """What the classifier's weights depend on beyond data, labels and recipe: the same seed gives other weights
    (and other FIDs) under another torch or CPU instruction set (the AVX2 and AVX-512 hosts' crawl-sprites floors:
    0.485 and 0.417). `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` makes an AVX-512 CPU train the AVX2 one."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def load_or_train_domain_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: ClassifierRecipe | None = None,
    num_classes: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> DomainClassifier:
    """Return the cached classifier for this data/labels/recipe, training and caching it if needed.

    Args:
        images: float (N, C, H, H) in [-1, 1], e.g. from `hf_sprites.data.to_tensors`.
        labels: int64 (N,) or one-hot float (N, K).
        recipe: `ClassifierRecipe` (seed included); default `ClassifierRecipe()`.
        num_classes: number of classes (default: inferred from the labels).
        cache_dir: root folder (default `default_cache_dir()`); entries go to `<root>/domain_classifier/<key>`.

    Returns:
        A `DomainClassifier` in eval mode with `.cache_path`, `.train_accuracy` and `.trained_with` (the torch
        version and CPU instruction set it was trained with, `training_kernels()`; None for older cache entries) set.
    """
    recipe = recipe or ClassifierRecipe()
    images, targets, num_classes = prepare_training_data(images, labels, num_classes)
    key = cache_key(images, targets, num_classes, recipe)
    folder = Path(cache_dir or default_cache_dir()) / "domain_classifier" / key[:32]
    if (folder / TRAINING_FILE).exists():
        return _load_entry(folder)
    model = train_domain_classifier(images, targets, recipe, num_classes)
    meta = {"format": CACHE_FORMAT, "key": key, "num_images": int(images.shape[0]), "num_classes": num_classes,
            "train_accuracy": model.train_accuracy, "recipe": recipe.to_dict(), "trained_with": training_kernels()}
    _save_entry(model, folder, meta)
    model.trained_with = meta["trained_with"]
    model.cache_path = folder
    return model
