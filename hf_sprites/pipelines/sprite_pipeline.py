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
    classifier-free guidance against the null (all-zero) context; the unet's own `context_vector` turns labels into
    contexts. Models with class embeddings (`num_class_embeds`) take integer labels. Any diffusers scheduler can be swapped in with `from_config` (DDPM, DDIM, DPM-Solver, ...).

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
        """Whether the unet's forward has a `context` input (float vectors; needed for classifier-free guidance)."""
        return "context" in inspect.signature(self.unet.forward).parameters

    @property
    def labels_become_context(self) -> bool:
        """Whether integer labels reach the unet as context vectors, through the unet's own `context_vector`."""
        return self.takes_context and callable(getattr(self.unet, "context_vector", None))

    def check_inputs(self, batch_size, class_labels, context, guidance_scale) -> None:
        """Raise one clear error for conditioning this unet cannot take, before any work is done."""
        if class_labels is not None and context is not None:
            raise ValueError("Pass either `class_labels` or `context`, not both.")
        if class_labels is None and context is None:
            if guidance_scale != 1.0:
                raise ValueError("`guidance_scale` needs `class_labels` or `context` to guide toward.")
            return
        n = self.num_classes
        if not n:
            raise ValueError("This unet is unconditional (no `n_cfeat` / `num_class_embeds` in its config); drop the labels.")
        if context is not None:
            if not self.takes_context:
                raise ValueError(f"{type(self.unet).__name__} has no `context` input; pass integer `class_labels`.")
            cond = _as_context(context)
            if cond.ndim != 2 or cond.shape[1] != n:
                raise ValueError(f"`context` must have shape (batch, {n}) for this model, got {tuple(cond.shape)}.")
        else:
            cond = _as_labels(class_labels)
            if cond.is_floating_point() or cond.numel() == 0:
                raise ValueError("`class_labels` must be a non-empty list of integers; pass float vectors as `context`.")
            if int(cond.min()) < 0 or int(cond.max()) >= n:
                raise ValueError(f"class label out of range: this model has {n} classes, so labels must be in 0..{n - 1}.")
        if cond.shape[0] != 1 and batch_size not in (1, cond.shape[0]):
            raise ValueError(f"batch_size={batch_size} but {cond.shape[0]} labels/contexts were given; make them agree.")
        if guidance_scale != 1.0 and not self.takes_context:
            raise ValueError("Classifier-free guidance needs a null context: use a unet with a `context` input (ContextUnet).")
        if guidance_scale != 1.0 and context is None and not self.labels_become_context:
            raise ValueError(
                f"{type(self.unet).__name__} has no `context_vector` to turn labels into contexts for guidance; "
                "pass the labels as one-hot `context` vectors."
            )

    def prepare_conditioning(self, batch_size, class_labels, context, device, dtype) -> tuple[int, dict]:
        """The batch size and the unet's conditioning keyword arguments (call `check_inputs` first).

        Context vectors go in as `context`; integer labels go in as `class_labels`, or, for a unet with a `context`
        input and a `context_vector(class_labels, context, batch_size, device, dtype)` method (as `ContextUnet` has), as
        the contexts that the unet itself makes of them, so guidance can pair them with the null context in one call.
        """
        if class_labels is None and context is None:
            return batch_size, {}
        given = _as_context(context) if context is not None else _as_labels(class_labels)
        batch_size = given.shape[0] if given.shape[0] != 1 else batch_size
        if context is not None:
            return batch_size, {"context": given.to(device=device, dtype=dtype).expand(batch_size, -1)}
        labels = given.long().to(device)
        if self.labels_become_context:
            return batch_size, {"context": self.unet.context_vector(labels, None, batch_size, device, dtype)}
        return batch_size, {"class_labels": labels.expand(batch_size)}

    def predict(self, sample, t, cond: dict, guidance_scale: float) -> torch.Tensor:
        """The model output; when `s != 1`, the conditional and null-context outputs of one batched call, `guide`d."""
        if guidance_scale == 1.0 or not cond:
            return self.unet(sample, t, **cond).sample
        context = cond["context"]
        both = self.unet(torch.cat([sample, sample]), t, context=torch.cat([context, torch.zeros_like(context)])).sample
        conditional, unconditional = both.chunk(2)
        return self.guide(conditional, unconditional, guidance_scale)

    def guide(self, conditional: torch.Tensor, unconditional: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance, `uncond + s * (cond - uncond)`; a subclass may change the rule."""
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
        guidance_interval: tuple[float, float] = (0.0, 1.0),
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
            guidance_interval (`(float, float)`, defaults to `(0.0, 1.0)`): The fractions of the denoising steps
                between which guidance applies, as `start`/`stop` of diffusers' guiders: step `i` of `n` is guided when
                `int(start * n) <= i < int(stop * n)`, the others take the plain conditional call (one model call, not
                two). `(0.0, 1.0)`: every step.
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
        self.check_inputs(batch_size, class_labels, context, guidance_scale)
        start, stop = check_guidance_interval(guidance_interval)
        device, dtype = self._execution_device, self.unet.dtype
        batch_size, cond = self.prepare_conditioning(batch_size, class_labels, context, device, dtype)
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        sample = self.initial_noise((batch_size, self.unet.config.in_channels, *size), generator, device, dtype)

        self.scheduler.set_timesteps(num_inference_steps or self.scheduler.config.num_train_timesteps, device=device)
        intermediates = [] if return_intermediates else None
        timesteps = self.scheduler.timesteps
        guided = range(int(start * len(timesteps)), int(stop * len(timesteps)))
        for i, t in enumerate(self.progress_bar(timesteps)):
            scale = guidance_scale if i in guided else 1.0
            model_output = self.predict(self.scheduler.scale_model_input(sample, t), t, cond, scale)
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


def check_guidance_interval(guidance_interval) -> tuple[float, float]:
    """`(start, stop)` as floats, or one clear error when they are not fractions with `start < stop`."""
    try:
        start, stop = (float(x) for x in guidance_interval)
    except (TypeError, ValueError):
        start, stop = 1.0, 0.0  # not two numbers: the error below
    if not 0.0 <= start < stop <= 1.0:
        raise ValueError(
            f"guidance_interval must be (start, stop) with 0 <= start < stop <= 1 (fractions of the denoising steps), "
            f"got {guidance_interval!r}; (0.0, 1.0) guides every step."
        )
    return start, stop


def _as_context(context) -> torch.Tensor:
    return torch.as_tensor(np.asarray(context, dtype=np.float32))


def _as_labels(class_labels) -> torch.Tensor:
    return torch.as_tensor(np.asarray(class_labels)).reshape(-1)
