"""Class-conditional accuracy: how often a sample asked for class k is classified as k.

Example:
    >>> import torch
    >>> from hf_sprites.evaluation.accuracy import class_conditional_accuracy
    >>> result = class_conditional_accuracy(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), num_classes=2)
    >>> result["per_class"], result["mean"], result["overall"]
    ([0.5, 1.0], 0.75, 0.75)
"""

from __future__ import annotations

import torch


# which classes the samples of a conditional FID/KID ask for (`evaluate(fid_labels=...)`, `--fid_labels`)
FID_LABEL_MIXES = ("reference", "balanced")


def balanced_class_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """Class labels 0, 1, ..., K-1, 0, 1, ... so every class is asked for (almost) equally often."""
    return torch.arange(num_samples) % num_classes


def reference_class_labels(num_samples: int, class_counts) -> torch.Tensor:
    """Class labels in the proportions of `class_counts` (largest remainders), taken round-robin over the classes.

    FID and KID compare a *distribution*: samples asked for in other proportions than the reference's classes differ
    from it however good the model is (crawl-sprites: 2 % food, 40 % monsters). Equal counts give exactly
    `balanced_class_labels`.

    Example:
        >>> reference_class_labels(10, [30, 10, 10]).tolist()
        [0, 1, 2, 0, 1, 2, 0, 0, 0, 0]
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0 or bool((counts < 0).any()) or float(counts.sum()) <= 0:
        raise ValueError(f"class_counts must be non-negative per-class counts with a positive sum, got {class_counts!r}.")
    share = counts / counts.sum() * num_samples
    wanted = share.floor().long()
    wanted[torch.argsort(share - wanted, descending=True, stable=True)[: num_samples - int(wanted.sum())]] += 1
    labels = torch.repeat_interleave(torch.arange(len(wanted)), wanted)
    rank = torch.arange(num_samples) - torch.repeat_interleave(torch.cumsum(wanted, 0) - wanted, wanted)
    return labels[torch.argsort(rank * len(wanted) + labels)]  # round-robin: each class's 1st, then each one's 2nd, ...


def class_conditional_accuracy(predicted: torch.Tensor, requested: torch.Tensor, num_classes: int) -> dict:
    """Per-class and mean accuracy of `predicted` class indices against the `requested` ones.

    Returns:
        dict with `per_class` (list, None for classes never requested), `mean` (mean over requested
        classes, each class weighted equally) and `overall` (share of all samples that match).
    """
    predicted, requested = torch.as_tensor(predicted).long(), torch.as_tensor(requested).long()
    if predicted.shape != requested.shape or predicted.dim() != 1:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and requested {tuple(requested.shape)} must both be (N,) class indices."
        )
    correct = (predicted == requested).float()
    per_class = []
    for k in range(num_classes):
        mask = requested == k
        per_class.append(float(correct[mask].mean()) if bool(mask.any()) else None)
    seen = [value for value in per_class if value is not None]
    return {
        "per_class": per_class,
        "mean": float(sum(seen) / len(seen)) if seen else float("nan"),
        "overall": float(correct.mean()) if correct.numel() else float("nan"),
    }
