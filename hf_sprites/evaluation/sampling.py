"""Sampling for evaluation: any pipeline as a `SpritePipeline`, a swappable sampler, reproducible image tensors.

Every saved hf_sprites pipeline (a `DDPMPipeline` folder for unconditional models, a `SpritePipeline`
folder for conditional ones) is sampled through `SpritePipeline`, which takes any unet with the
UNet2DModel call signature and any scheduler, so one code path returns tensors for all of them.

Example:
    >>> import torch
    >>> from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
    >>> from hf_sprites.evaluation.sampling import generate_samples, swap_sampler
    >>> pipe = SpritePipeline(ContextUnet(n_feat=16).eval(), SpriteScheduler())
    >>> swap_sampler(pipe, "ddim")
    >>> images = generate_samples(pipe, 4, batch_size=2, num_inference_steps=3, seed=0, class_labels=torch.arange(4) % 2)
    >>> images.shape, bool(images.min() >= -1)
    (torch.Size([4, 3, 16, 16]), True)
"""

from __future__ import annotations

import inspect
import os

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from ..hub.load import load_pipeline
from ..pipelines import SpritePipeline

SAMPLERS = {"ddpm": None, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
DEFAULT_STEPS = {"ddpm": None, "ddim": 25, "dpm": 20}


def as_sprite_pipeline(pipeline_or_path, device=None) -> tuple[SpritePipeline, bool]:
    """A `SpritePipeline` over a pipeline's unet and scheduler, and whether the pipeline was conditional.

    `pipeline_or_path` is a pipeline object, or a folder (or Hub repo) that `hf_sprites.hub.load_pipeline` loads: the
    output_dir of `hf-sprites train`, a `save_pretrained` folder in either layout. Progress bars are off, the unet in
    eval mode, and the pipeline on `device` when one is given.
    """
    if isinstance(pipeline_or_path, (str, os.PathLike)):
        pipeline_or_path = load_pipeline(pipeline_or_path)
    if not hasattr(pipeline_or_path, "unet") or not hasattr(pipeline_or_path, "scheduler"):
        raise TypeError(
            f"Expected a diffusion pipeline (with .unet and .scheduler) or a pipeline folder, got "
            f"{type(pipeline_or_path).__name__}."
        )
    conditional = isinstance(pipeline_or_path, SpritePipeline)
    # a new pipeline object (the sampler swap must not change the caller's); a SpritePipeline subclass keeps its class
    pipe = (type(pipeline_or_path) if conditional else SpritePipeline)(unet=pipeline_or_path.unet,
                                                                      scheduler=pipeline_or_path.scheduler)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.eval()
    if device is not None:
        pipe.to(device)
    return pipe, conditional


def swap_sampler(pipe, sampler: str) -> None:
    """Replace the scheduler by `sampler` ("ddpm" keeps the trained one; "ddim", "dpm") built from its config."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}.")
    if SAMPLERS[sampler] is None:
        return
    if pipe.scheduler.config.get("prediction_type") == "sample" and hasattr(pipe.scheduler, "noise_like"):
        raise ValueError(
            f"The {type(pipe.scheduler).__name__} of this pipeline is not a noise-prediction schedule; "
            "sample it with its own scheduler (sampler='ddpm')."
        )
    target = SAMPLERS[sampler]
    accepted = inspect.signature(target.__init__).parameters
    config = {k: v for k, v in pipe.scheduler.config.items() if k in accepted or k.startswith("_")}
    pipe.scheduler = target.from_config(config)


def default_steps(pipe, sampler: str) -> int:
    """The sampler's customary step count (DDIM 25, DPM-Solver 20), or all training steps for DDPM; `pipe` is a
    pipeline or its scheduler."""
    scheduler = getattr(pipe, "scheduler", pipe)
    return DEFAULT_STEPS.get(sampler) or int(scheduler.config.num_train_timesteps)


def generate_samples(
    pipe,
    num_samples: int,
    batch_size: int,
    num_inference_steps: int,
    seed: int,
    class_labels: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """`num_samples` images as float (N, C, H, W) in [-1, 1] on the CPU, deterministic for `seed`.

    One CPU generator seeded once drives all batches, so the result does not depend on the device
    and only the last batch may be smaller.
    """
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        labels = None if class_labels is None else class_labels[start : start + count]
        out = pipe(
            batch_size=count, class_labels=labels, guidance_scale=guidance_scale, guidance_interval=guidance_interval,
            num_inference_steps=num_inference_steps, generator=generator, output_type="pt",
        ).images
        chunks.append(out.float().cpu() * 2 - 1)
    return torch.cat(chunks)

