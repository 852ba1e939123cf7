"""Build the model and the noise scheduler a `TrainConfig` describes.

Three model kinds: the course's `ContextUnet`, the from-scratch `BasicUNet` (always paired with the
`CorruptScheduler`), and diffusers' stock `UNet2DModel`. `--ddpm_beta_schedule course` selects the
course's 500-step `SpriteScheduler`; every other schedule is a stock `DDPMScheduler`.

Example:
    >>> from hf_sprites.training.builders import build_model, build_scheduler
    >>> from hf_sprites.training.config import parse_train_args
    >>> cfg = parse_train_args(["--preset", "fashion_mnist", "--block_out_channels", "32", "32", "64"])
    >>> type(build_model(cfg)).__name__, type(build_scheduler(cfg)).__name__
    ('UNet2DModel', 'DDPMScheduler')
"""

from __future__ import annotations

from typing import Optional

from diffusers import DDPMScheduler, UNet2DModel

from hf_sprites import BasicUNet, ContextUnet, CorruptScheduler, SpriteScheduler


def label_width(cfg, num_classes: Optional[int]) -> int:
    """Context width of a ContextUnet: the number of classes when trained on labels, else `n_cfeat` (course: 5)."""
    if cfg.conditional and num_classes:
        return num_classes
    return cfg.n_cfeat or 5


def _image_size(cfg, channels: int) -> dict:
    return {"sample_size": cfg.resolution, "in_channels": channels, "out_channels": channels}


def _context_unet(cfg, channels: int, num_classes: Optional[int]):
    return ContextUnet(**_image_size(cfg, channels), n_feat=cfg.n_feat, n_cfeat=label_width(cfg, num_classes),
                       num_train_timesteps=cfg.ddpm_num_steps)


def _basic_unet(cfg, channels: int, num_classes: Optional[int]):
    return BasicUNet(**_image_size(cfg, channels))


def _unet2d(cfg, channels: int, num_classes: Optional[int]):
    return UNet2DModel(
        **_image_size(cfg, channels),
        layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types),
        num_class_embeds=num_classes if cfg.conditional else None,
    )


MODEL_BUILDERS = {"context_unet": _context_unet, "basic_unet": _basic_unet, "unet2d": _unet2d}


def build_model(cfg, channels: Optional[int] = None, num_classes: Optional[int] = None):
    """A freshly initialised model of kind `cfg.model` for `channels`-channel images of `cfg.resolution` pixels."""
    return MODEL_BUILDERS[cfg.model](cfg, channels or cfg.in_channels or 3, num_classes)


def build_scheduler(cfg):
    """The training noise scheduler; it is also the one saved with the pipeline."""
    if cfg.model == "basic_unet":
        return CorruptScheduler(
            num_train_timesteps=cfg.ddpm_num_steps,
            noise_distribution=cfg.noise_distribution,
            data_range=cfg.data_range,
        )
    if cfg.ddpm_beta_schedule == "course":
        return SpriteScheduler(prediction_type=cfg.prediction_type)
    return DDPMScheduler(
        num_train_timesteps=cfg.ddpm_num_steps,
        beta_schedule=cfg.ddpm_beta_schedule,
        prediction_type=cfg.prediction_type,
    )


def label_mode(cfg) -> Optional[str]:
    """How labels reach the model during training (see `DiffusionLoss.label_mode`)."""
    if not cfg.conditional:
        return None
    return "context" if cfg.model == "context_unet" else "class_labels"
