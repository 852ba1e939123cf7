"""Optimizer, learning-rate schedule and EMA for a training run.

Schedules come from `diffusers.optimization.get_scheduler`; `lr_scheduler="course"` adds the
DeepLearning.AI course's rule `lr = lr0 * (1 - epoch / num_epochs)` (linear decay to 0, one value per epoch).

Example:
    >>> import torch
    >>> from hf_sprites.training.optim import course_decay
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    >>> sched = course_decay(opt, steps_per_epoch=10, num_epochs=4)
    >>> for _ in range(20):
    ...     opt.step(); sched.step()
    >>> round(opt.param_groups[0]["lr"], 6)
    0.0005
"""

from __future__ import annotations

import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel


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
    """The course's per-epoch linear decay to 0: factor `1 - epoch / num_epochs` during epoch `epoch`."""

    def factor(step: int) -> float:
        return max(0.0, 1.0 - (step // max(1, steps_per_epoch)) / num_epochs)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_lr_scheduler(cfg, optimizer, steps_per_epoch: int, max_train_steps: int, num_processes: int = 1):
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
