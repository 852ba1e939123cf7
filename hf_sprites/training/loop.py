"""The training run: accelerate, EMA, LR schedule, logging, previews, checkpoints, resume, final folder.

Order of work: check every input (`validate.py`), load and preprocess the data, and only then write
anything. All processes run the same loop; only the main process writes previews, the pipeline
folder and the card, and pushes.

Example:
    >>> from hf_sprites.training.loop import plan_steps
    >>> plan_steps(batches_per_epoch=17, num_epochs=3, accumulation=2, max_train_steps=None)
    (8, 24, 3)
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from hf_sprites.atomic import atomic_write_text
from hf_sprites.data import load_images, make_batches

from .builders import build_model, build_scheduler, label_mode
from .checkpoints import find_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .optim import build_ema, build_lr_scheduler, build_optimizer
from .output import push, save_pipeline, write_card
from .previews import Previewer, ema_weights
from .step import DiffusionLoss, train_batch
from .validate import check_config, check_data, hub_repo_id

logger = get_logger(__name__)


def plan_steps(batches_per_epoch: int, num_epochs: int, accumulation: int, max_train_steps: Optional[int]):
    """(optimizer steps per epoch, total optimizer steps, epochs) as diffusers' scripts count them."""
    steps_per_epoch = max(1, batches_per_epoch // accumulation)
    total = max_train_steps or num_epochs * steps_per_epoch
    return steps_per_epoch, total, math.ceil(total / steps_per_epoch)


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


def make_accelerator(cfg) -> Accelerator:
    project = ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=str(Path(cfg.output_dir) / cfg.logging_dir))
    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=None if cfg.logger == "none" else cfg.logger,
        project_config=project,
    )


def load_source(cfg):
    return load_images(cfg.dataset_name, cfg.dataset_config_name, cfg.train_data_dir, cfg.split, cfg.image_column,
                       cfg.class_column, cfg.cache_dir)


def infer_channels(source) -> int:
    """1 for grey data, 3 otherwise (used when neither a preset nor --in_channels says)."""
    if source.pixels is not None:
        return 1 if source.pixels.ndim == 3 or source.pixels.shape[-1] == 1 else 3
    return 1 if source.dataset[0]["image"].mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def build_run(cfg, accelerator, source, batches, channels) -> Run:
    num_classes = source.num_classes if cfg.conditional else None
    model = build_model(cfg, channels, num_classes)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.torch_compile:
        model.compile()
    scheduler = build_scheduler(cfg)
    steps_per_epoch, max_steps, _ = plan_steps(len(batches), cfg.num_epochs, cfg.gradient_accumulation_steps,
                                               cfg.max_train_steps)
    optimizer = build_optimizer(cfg, model.parameters())
    lr_scheduler = build_lr_scheduler(cfg, optimizer, steps_per_epoch, max_steps, accelerator.num_processes)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = build_ema(cfg, accelerator.unwrap_model(model))
    if ema is not None:
        ema.to(accelerator.device)
    loss_fn = DiffusionLoss(scheduler, cfg.loss_type, label_mode(cfg), num_classes, cfg.cond_drop_prob,
                            scheduler.config.get("data_range", "-1..1"))
    previewer = Previewer(cfg, cfg.output_dir, num_classes, source.label_kind, seed=cfg.seed or 0)
    return Run(cfg, accelerator, source, batches, model, scheduler, optimizer, lr_scheduler, loss_fn, ema, previewer,
               steps_per_epoch, max_steps)


def prepare_output_dir(run: Run) -> None:
    """Create output_dir; with --overwrite_output_dir (and no resume) drop the previous run's checkpoints."""
    cfg, acc = run.cfg, run.accelerator
    if acc.is_main_process:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite_output_dir and not cfg.resume_from_checkpoint:
            for old in list_checkpoints(run.output_dir):
                shutil.rmtree(old)
        tracker_config = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                          for k, v in cfg.public_dict().items()}
        if cfg.logger != "none":
            acc.init_trackers("train", config=tracker_config)
    acc.wait_for_everyone()


def resume(run: Run) -> None:
    """Restore model, optimizer, LR schedule, RNG, EMA and data position from a checkpoint."""
    spec = run.cfg.resume_from_checkpoint
    path = find_checkpoint(run.output_dir, spec)
    if spec and path is None:
        logger.warning(f"--resume_from_checkpoint {spec}: no checkpoint in {run.output_dir} yet; starting a new run.")
    if path is None:
        return
    state = load_checkpoint(run.accelerator, path)
    run.global_step, run.history = int(state["global_step"]), list(state.get("history", []))
    run.batches.load_state_dict(state["data"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
        run.ema.to(run.accelerator.device)
    logger.info(f"Resumed from {path} at step {run.global_step} (epoch {run.batches.epoch}).")


class Meter:
    """Sums losses on the device and syncs only when a value is logged."""

    def __init__(self, device):
        self.total, self.count, self.images, self.start = torch.zeros((), device=device), 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, batch_size: int) -> None:
        self.total += loss
        self.count += 1
        self.images += batch_size

    def flush(self, accelerator) -> tuple[float, float]:
        """(mean loss over all processes, images/s over all processes) since the last flush."""
        loss = accelerator.reduce(self.total / max(1, self.count), reduction="mean").item()
        rate = self.images * accelerator.num_processes / max(1e-9, time.perf_counter() - self.start)
        self.__init__(self.total.device)
        return loss, rate


def log_step(run: Run, meter: Meter, progress) -> None:
    loss, rate = meter.flush(run.accelerator)
    lr = run.lr_scheduler.get_last_lr()[0]
    values = {"loss": loss, "lr": lr, "img_per_s": rate, "epoch": run.batches.epoch}
    if run.ema is not None:
        values["ema_decay"] = run.ema.cur_decay_value
    run.history.append([run.global_step, loss, rate])
    run.accelerator.log(values, step=run.global_step)
    progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")


def after_update(run: Run, meter: Meter, progress) -> None:
    """Bookkeeping after one optimizer step: EMA, counters, logs, checkpoints."""
    cfg = run.cfg
    if run.ema is not None:
        run.ema.step(run.model.parameters())
    run.global_step += 1
    progress.update(1)
    if run.global_step % cfg.logging_steps == 0 or run.global_step == run.max_train_steps:
        log_step(run, meter, progress)
    if cfg.checkpointing_steps and run.global_step % cfg.checkpointing_steps == 0:
        save_checkpoint(run.accelerator, run.output_dir, run.global_step, run.training_state(),
                        cfg.checkpoints_total_limit)


def end_of_epoch(run: Run, epoch: int) -> None:
    """Periodic preview grids and pipeline saves (the final ones are written by `finish`)."""
    cfg, acc = run.cfg, run.accelerator
    if run.global_step >= run.max_train_steps or not acc.is_main_process:
        return
    if (epoch + 1) % cfg.save_images_epochs == 0:
        run.previewer.write(acc, run.unet, run.ema, run.scheduler, run.global_step)
    if (epoch + 1) % cfg.save_model_epochs == 0:
        with ema_weights(run.unet, run.ema):
            save_pipeline(run.unet, run.scheduler, run.output_dir, cfg.conditional)


def train_loop(run: Run) -> None:
    cfg, acc = run.cfg, run.accelerator
    progress = tqdm(total=run.max_train_steps, initial=run.global_step, desc="train",
                    disable=not acc.is_local_main_process)
    meter = Meter(acc.device)
    run.model.train()
    while run.global_step < run.max_train_steps:
        epoch = run.batches.epoch
        for images, labels in run.batches:
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            loss = train_batch(acc, run.model, run.loss_fn, run.optimizer, run.lr_scheduler, images, labels,
                               cfg.max_grad_norm)
            meter.add(loss, images.shape[0])
            if acc.sync_gradients:
                after_update(run, meter, progress)
                if run.global_step >= run.max_train_steps:
                    break
        end_of_epoch(run, epoch)
    progress.close()


def finish(run: Run, token: Optional[str]) -> Path:
    """Final checkpoint, pipeline folder (EMA weights when EMA is on), samples, GIF, card, push."""
    cfg, acc = run.cfg, run.accelerator
    if cfg.checkpointing_steps and not (run.output_dir / f"checkpoint-{run.global_step}").is_dir():
        save_checkpoint(acc, run.output_dir, run.global_step, run.training_state(), cfg.checkpoints_total_limit)
    if acc.is_main_process:
        unet = run.unet
        with ema_weights(unet, run.ema):
            save_pipeline(unet, run.scheduler, run.output_dir, cfg.conditional)
            grid, _ = run.previewer.final(unet, run.scheduler, run.output_dir, cfg.save_gif)
        atomic_write_text(run.output_dir / "trainer_state.json", json.dumps(
            {"global_step": run.global_step, "log_history": [dict(zip(("step", "loss", "img_per_s"), row))
                                                             for row in run.history]}, indent=1))
        write_card(cfg, run.output_dir, run.source, grid)
        if cfg.push_to_hub:
            push(cfg, run.output_dir, hub_repo_id(cfg), token)
    acc.wait_for_everyone()
    acc.end_training()
    return run.output_dir


def train(cfg) -> Path:
    """Run a full training job described by `cfg`; returns the output folder."""
    token = check_config(cfg)
    accelerator = make_accelerator(cfg)
    with accelerator.main_process_first():
        source = load_source(cfg)
    check_data(cfg, source, accelerator.num_processes)
    if cfg.seed is not None:
        set_seed(cfg.seed, device_specific=True)  # own noise per process; DDP syncs the initial weights
    channels = cfg.in_channels or infer_channels(source)
    batches = make_batches(cfg, source, accelerator, channels)
    run = build_run(cfg, accelerator, source, batches, channels)
    accelerator.wait_for_everyone()  # every process has passed every check before anything is written
    prepare_output_dir(run)
    resume(run)
    train_loop(run)
    return finish(run, token)
