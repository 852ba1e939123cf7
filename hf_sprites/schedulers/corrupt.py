# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The Hugging Face course's `corrupt(x, amount)` and its simple sampler, as a `DDPMScheduler`.

This file imports nothing from `hf_sprites`, so it can travel to the Hub as remote code.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusers import DDPMScheduler, DiffusionPipeline, ModelMixin, SchedulerMixin  # noqa: F401  (names the loader looks up)
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

NOISE_DISTRIBUTIONS = ("gaussian", "uniform")
DATA_RANGES = ("-1..1", "0..1")


class CorruptScheduler(DDPMScheduler):
    r"""
    The course's from-scratch diffusion: `add_noise` is `corrupt(x, amount) = x * (1 - amount) + noise * amount`, and
    `step` moves the sample a fraction `1 / (steps left)` of the way toward the model's predicted clean image (the
    model predicts the clean image: `prediction_type="sample"`).

    Timestep `k` (0 .. T-1) means `amount = (k + 1) / T`; `set_timesteps(n)` spreads the amount from 1 down to `1/n`,
    and the last step lands exactly on the model's prediction.

    Two variants:

    - `noise_distribution="gaussian", data_range="-1..1"` (default): images in [-1, 1] and standard normal noise, so the
      fully corrupted input (`amount = 1`) is what stock [`~diffusers.DDPMPipeline`] starts from and its
      `(x / 2 + 0.5).clamp(0, 1)` maps the result to pixels. Train [`~hf_sprites.BasicUNet`] with this to sample through
      `DDPMPipeline`.
    - `noise_distribution="uniform", data_range="0..1"`: the lesson as written (images in [0, 1], uniform noise). Sample
      it with [`~hf_sprites.SpritePipeline`], which starts from `noise_like` and maps pixels by `data_range`.

    Example:

    ```py
    >>> import torch
    >>> from hf_sprites import CorruptScheduler
    >>> scheduler = CorruptScheduler()
    >>> x = torch.zeros(1, 1, 4, 4); noise = torch.ones_like(x)
    >>> float(scheduler.add_noise(x, noise, torch.tensor([499])).mean())  # amount 0.5
    0.5

    ```
    """

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, noise_distribution: str = "gaussian", data_range: str = "-1..1"):
        if noise_distribution not in NOISE_DISTRIBUTIONS:
            raise ValueError(f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}, got {noise_distribution!r}.")
        if data_range not in DATA_RANGES:
            raise ValueError(f"data_range must be one of {DATA_RANGES}, got {data_range!r}.")
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            prediction_type="sample",
            clip_sample=False,
            timestep_spacing="trailing",
        )
        self.amounts = torch.arange(1, num_train_timesteps + 1, dtype=torch.float32) / num_train_timesteps
        self._index_of = {int(t): i for i, t in enumerate(self.timesteps)}

    def amount(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The corruption amount in (0, 1] of each timestep."""
        self.amounts = self.amounts.to(timesteps.device)
        return self.amounts[timesteps.long()]

    def noise_like(self, sample: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise of the configured distribution, shaped like `sample` (what `add_noise` expects and sampling starts from)."""
        if self.config.noise_distribution == "gaussian":
            return randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        return torch.rand(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """`corrupt(x, amount)`: blend each image toward its noise by the amount of its timestep."""
        amount = self.amount(timesteps.to(original_samples.device)).to(original_samples.dtype)
        amount = amount.reshape(-1, *([1] * (original_samples.ndim - 1)))
        return original_samples * (1 - amount) + noise * amount

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps=None):
        """`n` evenly spaced amounts from 1 down to `1/n` (capped at `num_train_timesteps` steps)."""
        if timesteps is not None:
            raise ValueError("CorruptScheduler does not take custom timesteps; pass num_inference_steps.")
        if num_inference_steps is None or int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        T = self.config.num_train_timesteps
        n = min(int(num_inference_steps), T)
        ks = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
        self.num_inference_steps = n
        self.timesteps = torch.from_numpy(ks).to(device)
        self._index_of = {int(k): i for i, k in enumerate(ks)}

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> DDPMSchedulerOutput | tuple:
        """Move `sample` a fraction `1 / (steps left)` toward the predicted clean image `model_output`."""
        index = self._index_of.get(int(timestep))
        if index is None:
            raise ValueError(f"timestep {int(timestep)} is not one of this scheduler's timesteps; call set_timesteps first.")
        steps_left = len(self.timesteps) - index
        prev_sample = sample + (model_output - sample) / steps_left
        if not return_dict:
            return (prev_sample, model_output)
        return DDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=model_output)
