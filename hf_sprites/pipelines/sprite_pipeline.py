# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""A conditional DDPM pipeline for class labels and (mixed) context vectors, with classifier-free guidance.

This file imports nothing from `hf_sprites` and no concrete model class, so it can travel to the Hub as remote code
(`sprite_pipeline.py` at the root of a repo).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from diffusers import DiffusionPipeline, ModelMixin, SchedulerMixin  # noqa: F401  (names the loader looks up)
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor


@dataclass
class SpritePipelineOutput(BaseOutput):
    """`images` as PIL images, a numpy array or a tensor; `intermediates` (when asked for) one `(B, C, H, W)` float tensor
    in [0, 1] per denoising step, on the CPU."""

    images: list[Image.Image] | np.ndarray | torch.Tensor
    intermediates: list[torch.Tensor] | None = None


class SpritePipeline(DiffusionPipeline):
    r"""
    Sample images conditioned on class labels or context vectors.

    Works with any `unet` that has [`~diffusers.UNet2DModel`]'s call signature: models with a `context` argument (such as
    [`~hf_sprites.ContextUnet`]) take labels, float context vectors (mixtures like `[1, 0, 0.6, 0, 0]`) and
    classifier-free guidance against the null (all-zero) context; models with class embeddings (`num_class_embeds`) take
    integer labels. Any diffusers scheduler can be swapped in with `from_config` (DDPM, DDIM, DPM-Solver, ...).

    Example:

    ```py
    >>> import torch, hf_sprites
    >>> from diffusers import DDIMScheduler
    >>> from hf_sprites import ContextUnet, SpriteScheduler, SpritePipeline
    >>> pipe = SpritePipeline(ContextUnet(n_feat=16).eval(), SpriteScheduler())
    >>> images = pipe(class_labels=[0, 1, 2], num_inference_steps=5, generator=torch.manual_seed(0)).images
    >>> pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the course's fast sampler
    >>> mixed = pipe(context=[[1, 0, 0.6, 0, 0]], guidance_scale=2.0, num_inference_steps=25).images

    ```
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    # --- conditioning -------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        """Width of the context vector / number of class labels the model takes (None: unconditional model)."""
        config = self.unet.config
        return config.get("n_cfeat") or config.get("num_class_embeds")

    @property
    def takes_context(self) -> bool:
        return "context" in inspect.signature(self.unet.forward).parameters

    def check_inputs(self, batch_size, class_labels, context, guidance_scale) -> tuple[int, dict]:
        """Validate the conditioning up front; return the batch size and the conditioning kwargs for the unet."""
        if class_labels is not None and context is not None:
            raise ValueError("Pass either `class_labels` or `context`, not both.")
        if class_labels is None and context is None:
            if guidance_scale != 1.0:
                raise ValueError("`guidance_scale` needs `class_labels` or `context` to guide toward.")
            return batch_size, {}
        n = self.num_classes
        if not n:
            raise ValueError("This unet is unconditional (no `n_cfeat` / `num_class_embeds` in its config); drop the labels.")
        if context is not None:
            if not self.takes_context:
                raise ValueError(f"{type(self.unet).__name__} has no `context` input; pass integer `class_labels`.")
            cond = torch.as_tensor(np.asarray(context, dtype=np.float32))
            if cond.ndim != 2 or cond.shape[1] != n:
                raise ValueError(f"`context` must have shape (batch, {n}) for this model, got {tuple(cond.shape)}.")
        else:
            cond = torch.as_tensor(np.asarray(class_labels)).reshape(-1)
            if cond.is_floating_point() or cond.numel() == 0:
                raise ValueError("`class_labels` must be a non-empty list of integers; pass float vectors as `context`.")
            if int(cond.min()) < 0 or int(cond.max()) >= n:
                raise ValueError(f"class label out of range: this model has {n} classes, so labels must be in 0..{n - 1}.")
            cond = cond.long()
        if cond.shape[0] == 1 and batch_size > 1:
            cond = cond.expand(batch_size, *cond.shape[1:])
        elif batch_size not in (1, cond.shape[0]):
            raise ValueError(f"batch_size={batch_size} but {cond.shape[0]} labels/contexts were given; make them agree.")
        if guidance_scale != 1.0 and not self.takes_context:
            raise ValueError("Classifier-free guidance needs a null context: use a unet with a `context` input (ContextUnet).")
        if self.takes_context:
            cond = cond.float() if context is not None else torch.nn.functional.one_hot(cond, n).float()
            return cond.shape[0], {"context": cond}
        return cond.shape[0], {"class_labels": cond}

    def predict(self, sample, t, cond: dict, guidance_scale: float) -> torch.Tensor:
        """The model output, guided as `uncond + s * (cond - uncond)` in one batched call when `s != 1`."""
        if guidance_scale == 1.0 or not cond:
            return self.unet(sample, t, **cond).sample
        context = cond["context"]
        both = self.unet(torch.cat([sample, sample]), t, context=torch.cat([context, torch.zeros_like(context)])).sample
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance_scale * (conditional - unconditional)

    # --- sampling -----------------------------------------------------------------------------------------------
    def initial_noise(self, shape, generator, device, dtype) -> torch.Tensor:
        """Gaussian noise scaled by the scheduler, or the scheduler's own noise when it defines `noise_like`."""
        if hasattr(self.scheduler, "noise_like"):
            return self.scheduler.noise_like(torch.empty(shape, device=device, dtype=dtype), generator=generator)
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype) * self.scheduler.init_noise_sigma

    def to_unit_range(self, sample: torch.Tensor) -> torch.Tensor:
        """Model space -> [0, 1] pixels (the data range is [-1, 1] unless the scheduler says `data_range="0..1"`)."""
        if self.scheduler.config.get("data_range", "-1..1") == "-1..1":
            sample = sample / 2 + 0.5
        return sample.clamp(0, 1)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        class_labels=None,
        context=None,
        guidance_scale: float = 1.0,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        return_intermediates: bool = False,
    ) -> SpritePipelineOutput | tuple:
        r"""
        Args:
            batch_size (`int`, defaults to 1): Images to make; taken from the labels/contexts when those are given.
            class_labels (`list[int]` or tensor, *optional*): One class per image (or one for all).
            context (`list[list[float]]` or tensor, *optional*): One context vector per image; mixtures allowed.
            guidance_scale (`float`, defaults to 1.0): Classifier-free guidance scale; 1.0 is the plain conditional call.
            num_inference_steps (`int`, *optional*): Defaults to the scheduler's number of training steps.
            generator (`torch.Generator`, *optional*): For reproducible sampling.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`SpritePipelineOutput`] instead of a tuple.
            return_intermediates (`bool`, defaults to `False`): Also return the image after every step.
        """
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}.")
        if num_inference_steps is not None and int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        batch_size, cond = self.check_inputs(batch_size, class_labels, context, guidance_scale)
        device, dtype = self._execution_device, self.unet.dtype
        cond = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in cond.items()}
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        sample = self.initial_noise((batch_size, self.unet.config.in_channels, *size), generator, device, dtype)

        self.scheduler.set_timesteps(num_inference_steps or self.scheduler.config.num_train_timesteps, device=device)
        intermediates = [] if return_intermediates else None
        for t in self.progress_bar(self.scheduler.timesteps):
            model_output = self.predict(self.scheduler.scale_model_input(sample, t), t, cond, guidance_scale)
            sample = self.scheduler.step(model_output, t, sample, generator=generator).prev_sample
            if return_intermediates:
                intermediates.append(self.to_unit_range(sample).float().cpu())

        images = self.to_unit_range(sample).float()
        if output_type != "pt":
            images = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, intermediates)
        return SpritePipelineOutput(images=images, intermediates=intermediates)
