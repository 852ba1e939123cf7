# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Grids of samples and GIFs of the denoising, from PIL images or the pipelines' intermediate frames."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .atomic import temporary_sibling


def image_grid(images: Sequence[Image.Image], nrow: int | None = None, scale: int = 1, pad: int = 1) -> Image.Image:
    """Tile images into one picture, `nrow` per row (default: a near-square grid), upscaled by `scale` (nearest).

    ```py
    >>> from PIL import Image
    >>> image_grid([Image.new("RGB", (16, 16))] * 6, nrow=3, scale=2).size
    (100, 67)

    ```
    """
    if not images:
        raise ValueError("image_grid needs at least one image.")
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    w, h = images[0].size
    w, h = w * scale, h * scale
    rows = math.ceil(len(images) / nrow)
    grid = Image.new("RGB", (nrow * (w + pad) + pad, rows * (h + pad) + pad), "white")
    for i, image in enumerate(images):
        image = image.convert("RGB").resize((w, h), Image.NEAREST)
        grid.paste(image, (pad + (i % nrow) * (w + pad), pad + (i // nrow) * (h + pad)))
    return grid


def tensor_to_pil(batch: torch.Tensor) -> list[Image.Image]:
    """A `(B, C, H, W)` float tensor in [0, 1] (1 or 3 channels) -> PIL images."""
    array = (batch.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    if array.shape[-1] == 1:
        return [Image.fromarray(a[..., 0], mode="L") for a in array]
    return [Image.fromarray(a) for a in array]


def save_atomic(image: Image.Image, path: str | os.PathLike, **save_kwargs) -> Path:
    """Save a PIL image through a temporary file in the same folder, then rename it into place."""
    with temporary_sibling(path) as tmp:
        image.save(tmp, **save_kwargs)
    return Path(path)


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 80, loop: int = 0, hold_last_ms: int = 1000) -> Path:
    """Write frames as an animated GIF (atomically); the last frame is held for `hold_last_ms`."""
    if not frames:
        raise ValueError("save_gif needs at least one frame.")
    durations = [duration_ms] * (len(frames) - 1) + [max(duration_ms, hold_last_ms)]
    first, *rest = [f.convert("RGB") for f in frames]
    return save_atomic(first, path, format="GIF", save_all=True, append_images=rest, duration=durations, loop=loop)


def denoising_gif(
    intermediates: Sequence[torch.Tensor], path: str | os.PathLike, nrow: int | None = None, scale: int = 4, max_frames: int = 60
) -> Path:
    """A GIF of the denoising: one grid per step (at most `max_frames`, evenly picked, always with the final step).

    `intermediates` is what the pipelines return with `return_intermediates=True`.

    ```py
    >>> import torch, tempfile, os
    >>> frames = [torch.rand(4, 3, 16, 16) for _ in range(10)]
    >>> path = denoising_gif(frames, os.path.join(tempfile.mkdtemp(), "denoise.gif"))
    >>> path.stat().st_size > 0
    True

    ```
    """
    if not intermediates:
        raise ValueError("denoising_gif needs intermediate frames: call the pipeline with return_intermediates=True.")
    picks = np.unique(np.linspace(0, len(intermediates) - 1, min(max_frames, len(intermediates))).round().astype(int))
    frames = [image_grid(tensor_to_pil(intermediates[i]), nrow=nrow, scale=scale) for i in picks]
    return save_gif(frames, path)
