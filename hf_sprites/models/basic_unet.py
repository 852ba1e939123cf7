# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The from-scratch `BasicUNet` of the Hugging Face diffusion course (unit 1), as a diffusers model.

This file imports nothing from `hf_sprites`, so it can travel to the Hub as remote code (`unet/basic_unet.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from diffusers import DiffusionPipeline, ModelMixin, SchedulerMixin, UNet2DModel  # noqa: F401  (names the loader looks up)
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput


class BasicUNet(UNet2DModel):
    r"""
    A tiny U-Net with no time input: three 5x5 convolutions down (32, 64, 64 channels, max-pool between them) and three
    up (nearest upsampling, skip connections *added*), SiLU activations. It predicts the clean image, which is what
    [`~hf_sprites.CorruptScheduler`] expects.

    It keeps [`~diffusers.UNet2DModel`]'s call signature (`timestep` and `class_labels` are accepted and ignored) so that
    stock [`~diffusers.DDPMPipeline`] samples it.

    Difference from the course: the last convolution has no activation after it (the course applies SiLU there too),
    so the model can output the full [-1, 1] range that DDPMPipeline maps to pixels.

    Args:
        sample_size (`int`, defaults to 28): Image height and width; a multiple of 4 (two max-pools).
        in_channels (`int`, defaults to 1): Input channels.
        out_channels (`int`, defaults to 1): Output channels.

    Example:

    ```py
    >>> import torch
    >>> from hf_sprites import BasicUNet
    >>> net = BasicUNet(sample_size=28)
    >>> net(torch.randn(8, 1, 28, 28), 0).sample.shape
    torch.Size([8, 1, 28, 28])

    ```
    """

    _supports_gradient_checkpointing = False
    _skip_layerwise_casting_patterns = None

    @register_to_config
    def __init__(self, sample_size: int = 28, in_channels: int = 1, out_channels: int = 1):
        ModelMixin.__init__(self)  # not super().__init__(): that builds UNet2DModel's default network
        if not isinstance(sample_size, int) or sample_size < 4 or sample_size % 4:
            raise ValueError(
                f"BasicUNet needs a `sample_size` that is a positive multiple of 4 (it max-pools twice), got {sample_size!r}."
            )
        self.down_layers = nn.ModuleList(
            [nn.Conv2d(in_channels, 32, 5, padding=2), nn.Conv2d(32, 64, 5, padding=2), nn.Conv2d(64, 64, 5, padding=2)]
        )
        self.up_layers = nn.ModuleList(
            [nn.Conv2d(64, 64, 5, padding=2), nn.Conv2d(64, 32, 5, padding=2), nn.Conv2d(32, out_channels, 5, padding=2)]
        )
        self.act = nn.SiLU()
        self.downscale = nn.MaxPool2d(2)
        self.upscale = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int | None = None,
        class_labels: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple:
        """Predict the clean image from a corrupted `sample` (the timestep is ignored, as in the course)."""
        size, channels = self.config.sample_size, self.config.in_channels
        if sample.shape[1:] != (channels, size, size):
            raise ValueError(
                f"BasicUNet expects ({channels}, {size}, {size}) images, got {tuple(sample.shape[1:])}. "
                "Resize the images or build the model with that size/channels."
            )
        skips = []
        x = sample
        for i, conv in enumerate(self.down_layers):
            x = self.act(conv(x))
            if i < len(self.down_layers) - 1:
                skips.append(x)
                x = self.downscale(x)
        for i, conv in enumerate(self.up_layers):
            if i > 0:
                x = self.upscale(x) + skips.pop()
            x = conv(x)
            if i < len(self.up_layers) - 1:
                x = self.act(x)
        return UNet2DOutput(sample=x) if return_dict else (x,)
