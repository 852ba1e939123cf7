"""Sample grids and the denoising GIF during and after training.

Samples come from `SpritePipeline` (the package's pipeline, with any unet and scheduler), with a fixed
seed so grids of different steps are comparable, and never from the global RNG (so previews do not
change the training run). Conditional models get one column per class.

Example:
    >>> from hf_sprites.training.previews import preview_conditioning
    >>> preview_conditioning(6, num_classes=3, label_kind="int")
    ({'class_labels': [0, 1, 2, 0, 1, 2]}, 3)
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import torch

from hf_sprites import SpritePipeline
from hf_sprites.viz import denoising_gif, image_grid, save_atomic


def preview_conditioning(count: int, num_classes: Optional[int], label_kind: Optional[str]) -> tuple[dict, Optional[int]]:
    """Pipeline keyword arguments asking for every class in turn, and the grid width (one column per class)."""
    if not num_classes:
        return {"batch_size": count}, None
    count = max(num_classes, count - count % num_classes)
    classes = [i % num_classes for i in range(count)]
    if label_kind == "multi_hot":
        return {"context": torch.eye(num_classes)[classes].tolist()}, num_classes
    return {"class_labels": classes}, num_classes


@contextlib.contextmanager
def ema_weights(model, ema):
    """Temporarily load the EMA weights into `model` (no-op without EMA)."""
    if ema is None:
        yield model
        return
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())


@contextlib.contextmanager
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def sample(unet, scheduler, conditioning: dict, seed: int, num_inference_steps=None, intermediates=False):
    """Run the pipeline once; returns `SpritePipelineOutput` (PIL images, optional intermediate frames).

    `conditioning` holds the pipeline's conditioning arguments (batch_size, class_labels/context, guidance_scale).
    """
    pipe = SpritePipeline(unet=unet, scheduler=type(scheduler).from_config(scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(device=unet.device).manual_seed(seed)
    with eval_mode(unet):
        return pipe(**conditioning, num_inference_steps=num_inference_steps, generator=generator,
                    return_intermediates=intermediates)


class Previewer:
    """Writes `samples/step-<N>[-ema].png` grids and logs them to tensorboard."""

    def __init__(self, cfg, output_dir, num_classes=None, label_kind=None, seed: int = 0):
        self.cfg, self.samples_dir, self.seed = cfg, Path(output_dir) / "samples", seed
        self.conditioning, self.nrow = preview_conditioning(cfg.eval_batch_size, num_classes, label_kind)
        if num_classes and cfg.guidance_scale != 1.0:
            self.conditioning["guidance_scale"] = cfg.guidance_scale

    def grid(self, unet, scheduler, intermediates=False):
        out = sample(unet, scheduler, self.conditioning, self.seed, self.cfg.ddpm_num_inference_steps, intermediates)
        return image_grid(out.images, nrow=self.nrow, scale=max(1, 64 // unet.config.sample_size)), out.intermediates

    def write(self, accelerator, unet, ema, scheduler, step: int) -> list[Path]:
        """Grids from the raw weights and (with EMA) the EMA weights; main process only."""
        written = []
        variants = [("", None)] + ([("-ema", ema)] if ema is not None else [])
        for suffix, weights in variants:
            with ema_weights(unet, weights):
                grid, _ = self.grid(unet, scheduler)
            path = save_atomic(grid, self.samples_dir / f"step-{step:06d}{suffix}.png")
            log_image(accelerator, f"samples{suffix or '-raw'}", grid, step)
            written.append(path)
        return written

    def final(self, unet, scheduler, folder, make_gif: bool) -> tuple[Path, Optional[Path]]:
        """The final grid (`samples.png`) and denoising animation (`denoising.gif`) in `folder`."""
        grid, frames = self.grid(unet, scheduler, intermediates=make_gif)
        grid_path = save_atomic(grid, Path(folder) / "samples.png")
        gif_path = denoising_gif(frames, Path(folder) / "denoising.gif", nrow=self.nrow) if make_gif else None
        return grid_path, gif_path


def log_image(accelerator, tag: str, image, step: int) -> None:
    """Send an image to the tensorboard tracker, if one is active."""
    import numpy as np

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")
