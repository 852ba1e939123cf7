"""Build what a training run needs, in the order it needs it: accelerator, data, model, scheduler, optimizer, LR, EMA.

Three model kinds: the course's `ContextUnet`, the from-scratch `BasicUNet` (always paired with the
`CorruptScheduler`), and diffusers' stock `UNet2DModel`. `--ddpm_beta_schedule course` selects the
course's 500-step `SpriteScheduler`; every other schedule is a stock `DDPMScheduler`. Schedules come from
`diffusers.optimization.get_scheduler`; `lr_scheduler="course"` adds the DeepLearning.AI course's rule
`lr = lr0 * (1 - epoch / num_epochs)` (linear decay to 0, one value per epoch). `build_run` joins them all.
`--model_config_name_or_path` (a UNet2DModel config JSON, its folder or a Hub id) replaces the block flags, as in
diffusers' `train_unconditional.py`; the run fills in the size, channels and number of classes.

Example:
    >>> from hf_sprites.training.builders import build_model, build_scheduler
    >>> from hf_sprites.training.config import parse_train_args
    >>> cfg = parse_train_args(["--preset", "fashion_mnist", "--block_out_channels", "32", "32", "64"])
    >>> type(build_model(cfg)).__name__, type(build_scheduler(cfg)).__name__
    ('UNet2DModel', 'DDPMScheduler')
"""

from __future__ import annotations

import inspect
import logging
import warnings
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
from .output import Previewer, tracker_names
from .plan import RunPlan, plan_for_length, resolve_mixed_precision
from .step import DiffusionLoss

logger = logging.getLogger(__name__)
# a budgeted run's EMA averages over at most this share of its planned steps (see `ema_decay_cap`)
EMA_HORIZON_SHARE = 0.1

# --- accelerator and data ------------------------------------------------------------------------------------------


def make_accelerator(cfg) -> Accelerator:
    """accelerate with the run's accumulation, precision and trackers, logging under `output_dir/logging_dir`."""
    project = ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=str(Path(cfg.output_dir) / cfg.logging_dir))
    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
        log_with=tracker_names(cfg.logger) or None,
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
    """`--in_channels` (or the preset's, or the `--model_config_name_or_path` file's), else 1 when every training image
    is greyscale and 3 otherwise (a mix is logged: `hf_sprites.data.choose_channels`)."""
    from_file = cfg.model_config_name_or_path and load_model_config(cfg.model_config_name_or_path).get("in_channels")
    channels, note = choose_channels(source, cfg.in_channels or from_file, cfg.max_train_samples)
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
                       num_train_timesteps=cfg.ddpm_num_steps, block_norm=cfg.block_norm)


def _basic_unet(cfg, image_size: dict, num_classes: Optional[int]):
    return BasicUNet(**image_size)


def _unet2d(cfg, image_size: dict, num_classes: Optional[int]):
    if cfg.model_config_name_or_path:  # issue 9: the file's architecture instead of the block flags
        return build_from_config(cfg.model_config_name_or_path, image_size, num_classes if cfg.conditional else None)
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
    scheduler = DDPMScheduler(
        num_train_timesteps=cfg.ddpm_num_steps,
        beta_schedule=cfg.ddpm_beta_schedule,
        prediction_type=cfg.prediction_type,
        # the course's ContextUnet samples as the course does, without clipping the predicted image: at the guidance
        # it is sampled with, clipping ruins its samples (README "Results", the schedule lever: FID 55-64 against
        # 1.3-2.2); UNet2DModel keeps diffusers' default, as in the HF course
        clip_sample=cfg.model != "context_unet",
    )
    if cfg.ddpm_beta_schedule == "sigmoid":
        # only DDPMScheduler computes sigmoid betas (DDIM and DPM-Solver raise on the name): saved as `trained_betas`
        # too, the schedule loads into every diffusers sampler, the previews' and a user's
        scheduler = DDPMScheduler.from_config(scheduler.config, trained_betas=scheduler.betas.tolist())
    return scheduler


# --- optimizer, LR schedule, EMA -----------------------------------------------------------------------------------


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


def warmup_steps(cfg, total_steps: int) -> int:
    """LR warm-up in optimizer steps: `--lr_warmup_ratio` of the run when given, else `--lr_warmup_steps`."""
    if cfg.lr_warmup_ratio is not None:
        return round(cfg.lr_warmup_ratio * total_steps)
    return cfg.lr_warmup_steps


def build_lr_scheduler(cfg, optimizer, plan: RunPlan, num_processes: int = 1):
    """The LR schedule over the planned run, counted in scheduler calls.

    accelerate's prepared scheduler advances once per process for every optimizer step, so lengths are
    multiplied by `num_processes`.
    """
    if cfg.lr_scheduler == "course":
        return course_decay(optimizer, plan.steps_per_epoch * num_processes, plan.num_epochs)
    return get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=warmup_steps(cfg, plan.total_steps) * num_processes,
        num_training_steps=plan.total_steps * num_processes,
    )


def ema_decay_cap(cfg, plan: RunPlan) -> float:
    """The EMA decay cap of the run: `--ema_max_decay`, and for a budgeted run at most what averages over the last
    `EMA_HORIZON_SHARE` of its planned steps (a 0.9999 EMA of a 1,000-step run would still hold its first steps)."""
    if plan.budget_s is None:
        return cfg.ema_max_decay
    return min(cfg.ema_max_decay, 1.0 - 1.0 / max(1.0, EMA_HORIZON_SHARE * plan.total_steps))


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
    plan: Optional[RunPlan] = None
    max_train_steps: int = 0  # where the loop stops: the plan's total, unless a benchmark advances it in chunks
    global_step: int = 0
    history: list = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the run began (a time budget counts from there)
    threads: object = None  # the `ThreadChoice` of a CPU run
    stopped_at: Optional[int] = None  # the step where a spent time budget ended the run before its plan
    health: object = None  # the run's divergence checks (`health.Health`), made by the loop
    loop_clock: tuple = ()  # (time.monotonic(), global_step) when the loop began or last re-planned: its pace
    preview_seconds: float = 0.0  # wall time of the previews written since then (measured, left out of the pace)

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
            "plan": self.plan.to_dict() if self.plan is not None else None,
        }


def build_model_for_run(cfg, channels: int, num_classes: Optional[int]) -> torch.nn.Module:
    """The model in the run's memory format, compiled when asked."""
    model = build_model(cfg, channels, num_classes)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.torch_compile:
        model.compile(**({"mode": cfg.torch_compile_mode} if cfg.torch_compile_mode else {}))
    return model


def build_run(cfg, accelerator, source, batches, channels: Optional[int] = None, *, plan: Optional[RunPlan] = None) -> Run:
    """Model, scheduler, optimizer (prepared by accelerate), EMA, loss and previews for `batches`; and, once the run's
    length is known (`plan`, or `--num_epochs` / `--max_train_steps` when there is no time budget), its LR schedule.
    A budgeted run gets its plan later, from `hf_sprites.training.loop.plan_budget`, through `adopt_plan`."""
    num_classes = source.num_classes if cfg.conditional else None
    model = build_model_for_run(cfg, channels or image_channels(cfg, source), num_classes)
    scheduler = build_scheduler(cfg)
    optimizer = build_optimizer(cfg, model.parameters())
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = build_ema(cfg, accelerator.unwrap_model(model))
    if ema is not None:
        ema.to(accelerator.device)
    loss_fn = DiffusionLoss(scheduler, loss_type=cfg.loss_type, label_mode=label_mode(cfg), snr_gamma=cfg.snr_gamma,
                            cond_drop_prob=cfg.cond_drop_prob, data_range=scheduler.config.get("data_range", "-1..1"))
    previewer = Previewer(cfg, scheduler, num_classes=num_classes, label_kind=source.label_kind)
    run = Run(cfg=cfg, accelerator=accelerator, source=source, batches=batches, model=model, scheduler=scheduler,
              optimizer=optimizer, lr_scheduler=None, loss_fn=loss_fn, ema=ema, previewer=previewer)
    if plan is None and cfg.time_budget_minutes is None:
        plan = plan_for_length(len(batches), cfg.num_epochs, accumulation=cfg.gradient_accumulation_steps,
                               max_train_steps=cfg.max_train_steps, save_images_epochs=cfg.save_images_epochs)
    if plan is not None:
        adopt_plan(run, plan)
    return run


def adopt_plan(run: Run, plan: RunPlan) -> None:
    """Fix the run's length: its LR schedule (prepared by accelerate) and, for a budgeted run, its EMA decay cap.
    Mid-run (a budgeted run's `replan`), the prepared schedule keeps its place in accelerate's checkpoints and follows
    the new plan from the current step on."""
    run.plan, run.max_train_steps = plan, plan.total_steps
    num_processes = run.accelerator.num_processes
    lr_scheduler = build_lr_scheduler(run.cfg, run.optimizer, plan, num_processes=num_processes)
    if run.lr_scheduler is None:
        run.lr_scheduler = run.accelerator.prepare(lr_scheduler)
    else:
        with warnings.catch_warnings():  # torch warns of scheduler steps without optimizer steps: none are meant
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(run.global_step * num_processes):
                lr_scheduler.step()
        run.lr_scheduler.scheduler = lr_scheduler
    if run.ema is not None:
        run.ema.decay = ema_decay_cap(run.cfg, plan)


# --- --model_config_name_or_path: a UNet2DModel config file as the architecture ---------------------------------------


FIX = "pass a UNet2DModel config JSON (e.g. unet/config.json of a saved pipeline), its folder, or a Hub model id"


def load_model_config(name_or_path: str) -> dict:
    """The UNet2DModel config that `name_or_path` names; a `ValueError` saying what is wrong with it otherwise."""
    from diffusers import UNet2DModel

    what = f"--model_config_name_or_path {name_or_path}"
    local = Path(name_or_path).expanduser()
    if not local.exists() and (name_or_path.endswith(".json") or name_or_path.startswith((".", "/", "~"))):
        raise ValueError(f"{what} does not exist; {FIX}")
    try:
        values = UNet2DModel.load_config(str(local) if local.exists() else name_or_path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{what} cannot be read ({' '.join(str(err).split())[:300]}); {FIX}") from None
    known = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(key for key in values if not key.startswith("_") and key not in known)
    if values.get("_class_name", "UNet2DModel") != "UNet2DModel" or unknown:
        named = values.get("_class_name") or f"a model with keys {unknown}"
        raise ValueError(f"{what} is the config of {named}, not of a UNet2DModel; {FIX}")
    return values


def block_count(name_or_path: str) -> int:
    """How many resolution levels the file's UNet2DModel has (its `block_out_channels`, or the class default)."""
    from diffusers import UNet2DModel

    default = inspect.signature(UNet2DModel.__init__).parameters["block_out_channels"].default
    return len(load_model_config(name_or_path).get("block_out_channels") or default)


def build_from_config(name_or_path: str, image_size: dict, num_classes):
    """A fresh UNet2DModel from the file, with the run's size, channels and classes filled in."""
    from diffusers import UNet2DModel

    values = {**load_model_config(name_or_path), **image_size, "num_class_embeds": num_classes}
    try:
        return UNet2DModel.from_config(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"--model_config_name_or_path {name_or_path} does not build a UNet2DModel ({err}); fix the "
                         "file") from None
