# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The sprite U-Net of the DeepLearning.AI course "How Diffusion Models Work", as a diffusers model.

This file imports nothing from `hf_sprites`, so it can travel to the Hub as remote code (`unet/context_unet.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusers import DiffusionPipeline, ModelMixin, SchedulerMixin, UNet2DModel  # noqa: F401  (names the loader looks up)
from diffusers.configuration_utils import register_to_config
from diffusers.models.unets.unet_2d import UNet2DOutput

_COURSE_SQRT2 = 1.414  # the course's rounded sqrt(2): it divides the residual sum by this


BLOCK_NORMS = ("batch", "group")  # the course's BatchNorm, or GroupNorm with the 8 groups of its up path


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(8, channels)


def _conv_norm_gelu(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), _norm(norm, out_channels), nn.GELU())


class ResidualConvBlock(nn.Module):
    """Two conv-norm-GELU layers (BatchNorm in the course; `norm="group"`: GroupNorm); with `is_res` the input is added
    back and the sum divided by 1.414.

    Difference from the course: when channel counts differ, the course builds a *new, untrained* 1x1 conv inside every
    forward call for the shortcut. Here that conv is a registered, learned layer (`shortcut`), created once, saved and
    trained with the rest of the model.
    """

    def __init__(self, in_channels: int, out_channels: int, is_res: bool = False, norm: str = "batch"):
        super().__init__()
        self.is_res = is_res
        self.conv1 = _conv_norm_gelu(in_channels, out_channels, norm)
        self.conv2 = _conv_norm_gelu(out_channels, out_channels, norm)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if is_res and in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.conv1(x))
        if not self.is_res:
            return h
        skip = x if self.shortcut is None else self.shortcut(x)
        return (skip + h) / _COURSE_SQRT2


class UnetDown(nn.Module):
    """Two residual blocks, then halve the resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch"):
        super().__init__()
        self.model = nn.Sequential(
            ResidualConvBlock(in_channels, out_channels, norm=norm),
            ResidualConvBlock(out_channels, out_channels, norm=norm),
            nn.MaxPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetUp(nn.Module):
    """Concatenate the skip connection, double the resolution, then two residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch"):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 2, 2),
            ResidualConvBlock(out_channels, out_channels, norm=norm),
            ResidualConvBlock(out_channels, out_channels, norm=norm),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((x, skip), dim=1))


class EmbedFC(nn.Module):
    """A two-layer MLP that embeds a time value or a context vector into `out_dim` channels."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.model = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(-1, self.in_dim))[:, :, None, None]


def _check_config(sample_size: int, in_channels: int, out_channels: int, n_feat: int, n_cfeat: int,
                  block_norm: str) -> None:
    if not isinstance(sample_size, int) or sample_size < 4 or sample_size % 4:
        raise ValueError(
            f"ContextUnet needs a square `sample_size` that is a positive multiple of 4 (it pools twice by 2 and then "
            f"by sample_size/4), got {sample_size!r}. Resize your images to 16, 28, 32, 64, ... pixels."
        )
    if n_feat <= 0 or n_feat % 8:
        raise ValueError(f"`n_feat` must be a positive multiple of 8 (GroupNorm uses 8 groups), got {n_feat}.")
    if n_cfeat < 1:
        raise ValueError(f"`n_cfeat` must be >= 1 (the context width), got {n_cfeat}; pass context=None for unconditional use.")
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"`in_channels` and `out_channels` must be >= 1, got {in_channels} and {out_channels}.")
    if block_norm not in BLOCK_NORMS:
        raise ValueError(f"`block_norm` must be one of {BLOCK_NORMS} (the course's BatchNorm or GroupNorm), "
                         f"got {block_norm!r}.")


class ContextUnet(UNet2DModel):
    r"""
    The course's sprite U-Net: a residual init block, two down blocks, a pooled vector, and two up blocks where a time
    embedding and a context embedding modulate the features as `cemb * h + temb`.

    It subclasses [`~diffusers.UNet2DModel`] and keeps its call signature, so stock [`~diffusers.DDPMPipeline`] samples
    it (with the null context) and it saves/loads with `save_pretrained` / `from_pretrained` (safetensors).

    Args:
        sample_size (`int`, defaults to 16): Image height and width; a multiple of 4.
        in_channels (`int`, defaults to 3): Channels of the input image.
        out_channels (`int`, defaults to 3): Channels of the predicted noise.
        n_feat (`int`, defaults to 64): Base feature width `F` (a multiple of 8).
        n_cfeat (`int`, defaults to 5): Width of the context vector (number of classes).
        num_train_timesteps (`int`, defaults to 500): `T` of the course; the model sees time as `(t + offset) / T`.
        timestep_offset (`int`, defaults to 1): Maps a scheduler timestep `k` (0-based) to the course's `t = k + 1`.
        block_norm (`str`, defaults to `"batch"`): The norm inside the residual blocks: the course's BatchNorm
            (`"batch"`), whose running statistics the model samples with, or GroupNorm with 8 groups (`"group"`), which
            normalises each image on its own and keeps no statistics. The up path's two GroupNorms are the course's
            either way.

    Example:

    ```py
    >>> import torch
    >>> from hf_sprites import ContextUnet
    >>> unet = ContextUnet(sample_size=16, n_feat=64, n_cfeat=5)
    >>> x = torch.randn(2, 3, 16, 16)
    >>> unet(x, torch.tensor([499, 10]), class_labels=torch.tensor([0, 3])).sample.shape
    torch.Size([2, 3, 16, 16])
    >>> unet(x, 10, context=torch.tensor([[1, 0, 0.6, 0, 0]] * 2)).sample.shape  # mixtures of contexts
    torch.Size([2, 3, 16, 16])

    ```
    """

    _supports_gradient_checkpointing = False
    _skip_layerwise_casting_patterns = None  # the inherited ["norm"] names no layer here

    @register_to_config
    def __init__(
        self,
        sample_size: int = 16,
        in_channels: int = 3,
        out_channels: int = 3,
        n_feat: int = 64,
        n_cfeat: int = 5,
        num_train_timesteps: int = 500,
        timestep_offset: int = 1,
        block_norm: str = "batch",
    ):
        # Not super().__init__(): that would build UNet2DModel's default network and overwrite this config.
        ModelMixin.__init__(self)
        _check_config(sample_size, in_channels, out_channels, n_feat, n_cfeat, block_norm)
        F2 = 2 * n_feat
        self.init_conv = ResidualConvBlock(in_channels, n_feat, is_res=True, norm=block_norm)
        self.down1 = UnetDown(n_feat, n_feat, norm=block_norm)
        self.down2 = UnetDown(n_feat, F2, norm=block_norm)
        self.to_vec = nn.Sequential(nn.AvgPool2d(sample_size // 4), nn.GELU())
        self.timeembed1 = EmbedFC(1, F2)
        self.timeembed2 = EmbedFC(1, n_feat)
        self.contextembed1 = EmbedFC(n_cfeat, F2)
        self.contextembed2 = EmbedFC(n_cfeat, n_feat)
        self.up0 = nn.Sequential(
            nn.ConvTranspose2d(F2, F2, sample_size // 4, sample_size // 4), nn.GroupNorm(8, F2), nn.ReLU()
        )
        self.up1 = UnetUp(4 * n_feat, n_feat, norm=block_norm)
        self.up2 = UnetUp(F2, n_feat, norm=block_norm)
        self.out = nn.Sequential(
            nn.Conv2d(F2, n_feat, 3, 1, 1), nn.GroupNorm(8, n_feat), nn.ReLU(), nn.Conv2d(n_feat, out_channels, 3, 1, 1)
        )

    # --- inputs -------------------------------------------------------------------------------------------------
    def course_time(self, timestep, batch_size: int, device, dtype) -> torch.Tensor:
        """Scheduler timesteps (scalar or per-sample) -> the course's time input `t / T` of shape (B, 1)."""
        t = torch.as_tensor(timestep, device=device).to(dtype)
        if t.ndim == 0:
            t = t.expand(batch_size)
        t = t.reshape(-1)
        if t.shape[0] != batch_size:
            raise ValueError(f"got {t.shape[0]} timesteps for a batch of {batch_size}; pass one per sample or a scalar.")
        return ((t + self.config.timestep_offset) / self.config.num_train_timesteps)[:, None]

    def context_vector(self, class_labels, context, batch_size: int, device, dtype) -> torch.Tensor:
        """Class labels (one-hot), float context vectors (as given) or nothing (the null, all-zero context)."""
        n = self.config.n_cfeat
        if class_labels is not None and context is not None:
            raise ValueError("pass either `class_labels` or `context`, not both.")
        if context is not None:
            context = torch.as_tensor(context, device=device, dtype=dtype)
            if context.ndim != 2 or context.shape[1] != n:
                raise ValueError(
                    f"`context` must have shape (batch, {n}) for this model (n_cfeat={n}), got {tuple(context.shape)}."
                )
            if context.shape[0] not in (1, batch_size):
                raise ValueError(f"got {context.shape[0]} context vectors for a batch of {batch_size}.")
            return context.expand(batch_size, n)
        if class_labels is not None:
            labels = torch.as_tensor(class_labels).reshape(-1)
            if labels.is_floating_point():
                raise ValueError("`class_labels` must be integers; pass float vectors as `context` instead.")
            if labels.device.type == "cpu" and labels.numel() and (labels.min() < 0 or labels.max() >= n):
                raise ValueError(f"`class_labels` out of range: this model has {n} classes, so labels must be in 0..{n - 1}.")
            if labels.shape[0] not in (1, batch_size):
                raise ValueError(f"got {labels.shape[0]} class labels for a batch of {batch_size}.")
            return F.one_hot(labels.to(device).long(), n).to(dtype).expand(batch_size, n)
        return torch.zeros(batch_size, n, device=device, dtype=dtype)

    # --- network ------------------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        class_labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple:
        """Predict the noise in `sample` at `timestep`, optionally conditioned on `class_labels` or `context`."""
        b, _, h, w = sample.shape
        if (h, w) != (self.config.sample_size, self.config.sample_size) or sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"ContextUnet expects ({self.config.in_channels}, {self.config.sample_size}, {self.config.sample_size}) "
                f"images, got {tuple(sample.shape[1:])}. Resize the images or build the model with that size/channels."
            )
        t = self.course_time(timestep, b, sample.device, sample.dtype)
        c = self.context_vector(class_labels, context, b, sample.device, sample.dtype)

        x0 = self.init_conv(sample)
        d1 = self.down1(x0)
        d2 = self.down2(d1)
        u1 = self.up0(self.to_vec(d2))
        u2 = self.up1(self.contextembed1(c) * u1 + self.timeembed1(t), d2)
        u3 = self.up2(self.contextembed2(c) * u2 + self.timeembed2(t), d1)
        out = self.out(torch.cat((u3, x0), dim=1))
        return UNet2DOutput(sample=out) if return_dict else (out,)
