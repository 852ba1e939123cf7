"""Build what a training run needs, in the order it needs it: accelerator, data, model, scheduler, optimizer, LR, EMA.

Three model kinds: the course's `ContextUnet`, the from-scratch `BasicUNet` (always paired with the
`CorruptScheduler`), and diffusers' stock `UNet2DModel`. `--ddpm_beta_schedule course` selects the
course's 500-step `SpriteScheduler`; every other schedule is a stock `DDPMScheduler`. Schedules come from
`diffusers.optimization.get_scheduler`; `lr_scheduler="course"` adds the DeepLearning.AI course's rule
`lr = lr0 * (1 - epoch / num_epochs)` (linear decay to 0, one value per epoch). `build_run` joins them all.

Example:
    >>> from hf_sprites.training.builders import build_model, build_scheduler
    >>> from hf_sprites.training.config import parse_train_args
    >>> cfg = parse_train_args(["--preset", "fashion_mnist", "--block_out_channels", "32", "32", "64"])
    >>> type(build_model(cfg)).__name__, type(build_scheduler(cfg)).__name__
    ('UNet2DModel', 'DDPMScheduler')
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from hf_sprites.data import choose_channels, load_images
from hf_sprites.models import BasicUNet, ContextUnet
from hf_sprites.schedulers import CorruptScheduler, SpriteScheduler

from .config import label_mode
from .output import Previewer
from .step import DiffusionLoss

logger = logging.getLogger(__name__)

# --- accelerator and data ------------------------------------------------------------------------------------------


def make_accelerator(cfg) -> Accelerator:
    """accelerate with the run's accumulation, precision and tracker, logging under `output_dir/logging_dir`."""
    project = ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=str(Path(cfg.output_dir) / cfg.logging_dir))
    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=None if cfg.logger == "none" else cfg.logger,
        project_config=project,
    )


def load_source(cfg):
    """The run's images and labels as an `ImageSource` (the data layer raises on bad input)."""
    return load_images(
        dataset_name=cfg.dataset_name,
        dataset_config_name=cfg.dataset_config_name,
        train_data_dir=cfg.train_data_dir,
        split=cfg.split,
        image_column=cfg.image_column,
        class_column=cfg.class_column,
        cache_dir=cfg.cache_dir,
    )


def image_channels(cfg, source) -> int:
    """`--in_channels` (or the preset's), else 1 when every training image is greyscale and 3 otherwise (a mix is
    logged: `hf_sprites.data.choose_channels`)."""
    channels, note = choose_channels(source, cfg.in_channels, cfg.max_train_samples)
    if note:
        logger.warning(note)
    return channels


# --- model and noise scheduler -------------------------------------------------------------------------------------


def label_width(cfg, num_classes: Optional[int]) -> int:
    """Context width of a ContextUnet: the number of classes when trained on labels, else `n_cfeat` (course: 5)."""
    if cfg.conditional and num_classes:
        return num_classes
    return cfg.n_cfeat or 5


def _context_unet(cfg, image_size: dict, num_classes: Optional[int]):
    return ContextUnet(**image_size, n_feat=cfg.n_feat, n_cfeat=label_width(cfg, num_classes),
                       num_train_timesteps=cfg.ddpm_num_steps)


def _basic_unet(cfg, image_size: dict, num_classes: Optional[int]):
    return BasicUNet(**image_size)


def _unet2d(cfg, image_size: dict, num_classes: Optional[int]):
    return UNet2DModel(
        **image_size,
        layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types),
        num_class_embeds=num_classes if cfg.conditional else None,
    )


MODEL_BUILDERS = {"context_unet": _context_unet, "basic_unet": _basic_unet, "unet2d": _unet2d}


def build_model(cfg, channels: Optional[int] = None, num_classes: Optional[int] = None):
    """A freshly initialised model of kind `cfg.model` for `channels`-channel images of `cfg.resolution` pixels."""
    channels = channels or cfg.in_channels or 3
    image_size = {"sample_size": cfg.resolution, "in_channels": channels, "out_channels": channels}
    return MODEL_BUILDERS[cfg.model](cfg, image_size, num_classes)


def build_scheduler(cfg):
    """The training noise scheduler; it is also the one saved with the pipeline."""
    if cfg.model == "basic_unet":
        return CorruptScheduler(
            num_train_timesteps=cfg.ddpm_num_steps,
            noise_distribution=cfg.noise_distribution,
            data_range=cfg.data_range,
        )
    if cfg.ddpm_beta_schedule == "course":
        return SpriteScheduler(num_train_timesteps=cfg.ddpm_num_steps, prediction_type=cfg.prediction_type)
    return DDPMScheduler(
        num_train_timesteps=cfg.ddpm_num_steps,
        beta_schedule=cfg.ddpm_beta_schedule,
        prediction_type=cfg.prediction_type,
    )


# --- optimizer, LR schedule, EMA -----------------------------------------------------------------------------------


def plan_steps(batches_per_epoch: int, num_epochs: int, *, accumulation: int, max_train_steps: Optional[int]):
    """(optimizer steps per epoch, total optimizer steps, epochs) as diffusers' scripts count them.

    >>> plan_steps(17, 3, accumulation=2, max_train_steps=None)
    (8, 24, 3)
    """
    steps_per_epoch = max(1, batches_per_epoch // accumulation)
    total = max_train_steps or num_epochs * steps_per_epoch
    return steps_per_epoch, total, math.ceil(total / steps_per_epoch)


def build_optimizer(cfg, parameters) -> torch.optim.Optimizer:
    """Adam (the course) or AdamW (diffusers' examples) with the `--adam_*` settings."""
    optimizer_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer_cls(
        parameters,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
    )


def course_decay(optimizer, steps_per_epoch: int, num_epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The course's per-epoch linear decay to 0: factor `1 - epoch / num_epochs` during epoch `epoch`.

    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    >>> sched = course_decay(opt, steps_per_epoch=10, num_epochs=4)
    >>> for _ in range(20):
    ...     opt.step(); sched.step()
    >>> round(opt.param_groups[0]["lr"], 6)
    0.0005
    """

    def factor(step: int) -> float:
        return max(0.0, 1.0 - (step // max(1, steps_per_epoch)) / num_epochs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_lr_scheduler(cfg, optimizer, *, steps_per_epoch: int, max_train_steps: int, num_processes: int = 1):
    """The LR schedule, counted in scheduler calls.

    accelerate's prepared scheduler advances once per process for every optimizer step, so lengths are
    multiplied by `num_processes`.
    """
    if cfg.lr_scheduler == "course":
        num_epochs = -(-max_train_steps // steps_per_epoch)
        return course_decay(optimizer, steps_per_epoch * num_processes, num_epochs)
    return get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * num_processes,
        num_training_steps=max_train_steps * num_processes,
    )


def build_ema(cfg, model) -> EMAModel | None:
    """diffusers' `EMAModel` with warmup (`decay = 1 - (1 + step / inv_gamma) ** -power`, capped at max_decay)."""
    if not cfg.use_ema:
        return None
    return EMAModel(
        model.parameters(),
        decay=cfg.ema_max_decay,
        use_ema_warmup=True,
        inv_gamma=cfg.ema_inv_gamma,
        power=cfg.ema_power,
        model_cls=type(model),
        model_config=model.config,
    )


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything a running training job holds."""

    cfg: object
    accelerator: Accelerator
    source: object
    batches: object
    model: torch.nn.Module
    scheduler: object
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    loss_fn: DiffusionLoss
    ema: object
    previewer: Previewer
    steps_per_epoch: int
    max_train_steps: int
    global_step: int = 0
    history: list = field(default_factory=list)
    health: object = None  # the run's divergence checks (`health.Health`), made by the loop

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def unet(self):
        return self.accelerator.unwrap_model(self.model)

    def training_state(self) -> dict:
        return {
            "global_step": self.global_step,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "data": self.batches.state_dict(),
            "history": self.history,
        }


def build_model_for_run(cfg, channels: int, num_classes: Optional[int]) -> torch.nn.Module:
    """The model in the run's memory format, compiled when asked."""
    model = build_model(cfg, channels, num_classes)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.torch_compile:
        model.compile()
    return model


def build_run(cfg, accelerator, source, batches, channels: Optional[int] = None) -> Run:
    """Model, scheduler, optimizer, LR schedule (prepared by accelerate), EMA, loss and previews for `batches`."""
    num_classes = source.num_classes if cfg.conditional else None
    model = build_model_for_run(cfg, channels or image_channels(cfg, source), num_classes)
    scheduler = build_scheduler(cfg)
    steps_per_epoch, max_steps, _ = plan_steps(
        len(batches), cfg.num_epochs, accumulation=cfg.gradient_accumulation_steps, max_train_steps=cfg.max_train_steps
    )
    optimizer = build_optimizer(cfg, model.parameters())
    lr_scheduler = build_lr_scheduler(cfg, optimizer, steps_per_epoch=steps_per_epoch, max_train_steps=max_steps,
                                      num_processes=accelerator.num_processes)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = build_ema(cfg, accelerator.unwrap_model(model))
    if ema is not None:
        ema.to(accelerator.device)
    loss_fn = DiffusionLoss(scheduler, loss_type=cfg.loss_type, label_mode=label_mode(cfg),
                            cond_drop_prob=cfg.cond_drop_prob, data_range=scheduler.config.get("data_range", "-1..1"))
    previewer = Previewer(cfg, scheduler, num_classes=num_classes, label_kind=source.label_kind)
    return Run(cfg=cfg, accelerator=accelerator, source=source, batches=batches, model=model, scheduler=scheduler,
               optimizer=optimizer, lr_scheduler=lr_scheduler, loss_fn=loss_fn, ema=ema, previewer=previewer,
               steps_per_epoch=steps_per_epoch, max_train_steps=max_steps)
