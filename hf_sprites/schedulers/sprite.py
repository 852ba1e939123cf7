# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The 500-step DDPM schedule of the DeepLearning.AI sprite course, as a `DDPMScheduler`.

This file imports nothing from `hf_sprites`, so it can travel to the Hub as remote code.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusers import DDPMScheduler, DiffusionPipeline, ModelMixin, SchedulerMixin  # noqa: F401  (names the loader looks up)
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor


def course_schedule(num_train_timesteps: int = 500, beta_start: float = 1e-4, beta_end: float = 0.02):
    """The course's schedule on its `T + 1` point grid, in float64.

    Returns `(betas, alphas_cumprod)` for the diffusers timesteps `k = 0 .. T-1`, where timestep `k` is the course's
    `t = k + 1`. The course sets `alpha_bar_0 = 1` but still multiplies `alpha_0` into every later `alpha_bar_t`, so the
    first returned beta is `1 - alpha_bar_1` (not the grid's `beta_1`); all later betas are the grid's own.
    """
    grid = np.linspace(beta_start, beta_end, num_train_timesteps + 1, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - grid)[1:]
    betas = 1.0 - alphas_cumprod / np.concatenate([[1.0], alphas_cumprod[:-1]])
    return betas, alphas_cumprod


class SpriteScheduler(DDPMScheduler):
    r"""
    [`~diffusers.DDPMScheduler`] with the course's defaults: 500 steps, betas linear from 1e-4 to 0.02 on a 501-point
    grid with `alpha_bar_0 = 1` (scheduler timestep `k` is the course's `t = k + 1`), noise std `sqrt(beta_t)` when
    sampling, no clipping of the predicted clean image.

    At full steps, `step` uses the course's update
    `x_{t-1} = (x_t - eps * (1 - a_t) / sqrt(1 - ab_t)) / sqrt(a_t) + sqrt(b_t) * z` with the course's per-step `a_t`,
    so a course-trained model samples exactly as in the course. With fewer steps it uses `a = ab_t / ab_prev`.

    The config stores the schedule as `trained_betas`, so `DDIMScheduler.from_config(scheduler.config)` and
    `DPMSolverMultistepScheduler.from_config(...)` see the same `alpha_bar` (the course's DDIM lab is
    `DDIMScheduler.from_config(config)` with 25 steps: the default `"trailing"` spacing visits `t = 500, 480, ... 20`).

    `set_timesteps(n)` caps `n` at `num_train_timesteps`, so `DDPMPipeline(...)()` with diffusers' default of 1000
    steps runs the full 500-step chain.

    Args:
        num_train_timesteps (`int`, defaults to 500): `T`.
        beta_start (`float`, defaults to 1e-4): First point of the beta grid.
        beta_end (`float`, defaults to 0.02): Last point of the beta grid.
        extra_noise (`bool`, defaults to `True`): Add `sqrt(b_t) * z` at each step. `False` reproduces the course's
            lab-1 demonstration of sampling without the extra noise (the samples collapse towards the mean).
        timestep_spacing (`str`, defaults to `"trailing"`): Spacing of inference timesteps (see `DDPMScheduler`).

    Example:

    ```py
    >>> from hf_sprites import SpriteScheduler
    >>> scheduler = SpriteScheduler()
    >>> scheduler.set_timesteps(1000)  # capped
    >>> len(scheduler.timesteps), int(scheduler.timesteps[0])
    (500, 499)
    >>> no_z = SpriteScheduler.from_config(scheduler.config, extra_noise=False)

    ```
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 500,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        extra_noise: bool = True,
        prediction_type: str = "epsilon",
        timestep_spacing: str = "trailing",
        steps_offset: int = 0,
    ):
        if prediction_type != "epsilon":
            raise ValueError(f"SpriteScheduler follows the course and predicts noise: prediction_type must be 'epsilon', got {prediction_type!r}.")
        betas, alphas_cumprod = course_schedule(num_train_timesteps, beta_start, beta_end)
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            trained_betas=betas.tolist(),
            variance_type="fixed_large",
            clip_sample=False,
            prediction_type=prediction_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
        )
        grid = np.linspace(beta_start, beta_end, num_train_timesteps + 1, dtype=np.float64)
        self.step_alphas = (1.0 - grid[1:]).tolist()  # the course's own a_t for one step, t = k + 1
        self._alphas_cumprod = alphas_cumprod.tolist()  # float64 copies for the step coefficients

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps=None):
        """Like `DDPMScheduler.set_timesteps`, but more steps than the schedule has means all of them."""
        if num_inference_steps is not None:
            num_inference_steps = min(int(num_inference_steps), self.config.num_train_timesteps)
        super().set_timesteps(num_inference_steps=num_inference_steps, device=device, timesteps=timesteps)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DDPMSchedulerOutput | tuple:
        """One reverse step from `timestep` to the previous inference timestep (see the class docstring)."""
        t = int(timestep)
        prev_t = int(self.previous_timestep(t))
        ab_t = self._alphas_cumprod[t]
        alpha = self.step_alphas[t] if prev_t == t - 1 else ab_t / (self._alphas_cumprod[prev_t] if prev_t >= 0 else 1.0)
        beta = 1.0 - alpha

        pred_original_sample = (sample - (1.0 - ab_t) ** 0.5 * model_output) / ab_t**0.5
        prev_sample = (sample - model_output * (beta / (1.0 - ab_t) ** 0.5)) / alpha**0.5
        if t > 0 and self.config.extra_noise:
            z = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
            prev_sample = prev_sample + beta**0.5 * z

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return DDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
