"""The training run: check, build, resume, loop (log, EMA, checkpoints, previews), then write the pipeline folder.

Order of work (`train`): check every setting (`config.check_config`), take the output folder for this run and check
it (`folder.own_output_dir`, `folder.check_outputs`), load the data and check it against the settings
(`config.check_data`), check that the run fits in memory (`memory.check_memory`), build the run
(`builders.build_run`), and only then write anything. All processes run the same loop; only the main process writes
previews, the pipeline folder and the card, and pushes. Non-finite losses and weights stop the run (`health.Health`).

Example:
    >>> from hf_sprites.training.loop import Meter
    >>> import torch
    >>> meter = Meter("cpu")
    >>> meter.add(torch.tensor(0.5), batch_size=8); meter.add(torch.tensor(0.25), batch_size=8)
    >>> (meter.count, meter.images, round(float(meter.total), 2))
    (2, 16, 0.75)
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Optional

import torch
from accelerate.logging import get_logger
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm

from hf_sprites.atomic import atomic_write_text
from hf_sprites.data import make_batches

from .builders import Run, adopt_plan, build_run, image_channels, load_source, make_accelerator
from .config import check_config, check_data
from .folder import check_outputs, own_output_dir, prepare_folder
from .health import Health
from .memory import check_memory
from .output import (PROJECT_NAME, STATE_FILE, ema_weights, find_checkpoint, init_kwargs,
                     load_checkpoint, push, save_checkpoint, save_pipeline, tracker_names, training_run, write_card,
                     write_trainer_state)
from .plan import RunPlan, plan_for_budget, replan, use_cpu_threads
from .step import train_batch

logger = get_logger(__name__)

def prepare_output_dir(run: Run) -> None:
    """Recover output_dir from interrupted writes; with --overwrite_output_dir (and no resume) drop the previous run's
    checkpoints (`folder.prepare_folder`)."""
    cfg, acc = run.cfg, run.accelerator
    if acc.is_main_process:
        prepare_folder(cfg, resuming=find_checkpoint(run.output_dir, cfg.resume_from_checkpoint) is not None)
        start_trackers(run)
    acc.wait_for_everyone()


def start_trackers(run: Run) -> None:
    """Start the run's trackers (main process), with the settings as their config; files go under logging_dir."""
    names = tracker_names(run.cfg.logger)
    if not names:
        return
    logging_dir = run.output_dir / run.cfg.logging_dir
    logging_dir.mkdir(parents=True, exist_ok=True)
    config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in run.cfg.public_dict().items()}
    run.accelerator.init_trackers(PROJECT_NAME, config=config,
                                  init_kwargs=init_kwargs(names, logging_dir, run.output_dir.resolve().name))


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


def checkpoint(run: Run) -> None:
    run.health.check(run, before=f"checkpoint-{run.global_step}")
    save_checkpoint(run.accelerator, run.output_dir, step=run.global_step, training_state=run.training_state(),
                    total_limit=run.cfg.checkpoints_total_limit)


def past_budget(run: Run) -> bool:
    """Whether a budgeted run has used up its wall time (decided by the main process, shared with all)."""
    if run.plan.budget_s is None:
        return False
    late = [time.monotonic() - run.started > run.plan.budget_s]
    broadcast_object_list(late)
    return late[0]


def after_update(run: Run, meter: Meter, progress) -> None:
    """Bookkeeping after one optimizer step: EMA, counters, logs, budget, checkpoints, planned previews."""
    cfg, acc = run.cfg, run.accelerator
    if run.ema is not None:
        run.ema.step(run.model.parameters())
    run.global_step += 1
    progress.update(1)
    if run.global_step == run.plan.replan_step:
        replan_budget(run)
        progress.total = run.max_train_steps
    if run.global_step % cfg.logging_steps == 0 or run.global_step == run.max_train_steps:
        run.health.check(run)  # read where the loop syncs anyway
        log_step(run, meter, progress)
        if run.global_step < run.max_train_steps and past_budget(run):
            logger.warning(f"The time budget is spent at step {run.global_step} of the {run.plan.total_steps} planned "
                           "(the machine ran slower than measured); ending the run here.")
            run.stopped_at, run.max_train_steps = run.global_step, run.global_step
    if cfg.checkpointing_steps and run.global_step % cfg.checkpointing_steps == 0:
        checkpoint(run)
    if run.global_step in run.plan.preview_steps and acc.is_main_process:
        start = time.monotonic()
        run.previewer.write(acc, run.unet, ema=run.ema, step=run.global_step)
        run.preview_seconds += time.monotonic() - start


def end_of_epoch(run: Run, epoch: int) -> None:
    """Periodic pipeline saves (the final one is written by `finish`)."""
    cfg, acc = run.cfg, run.accelerator
    if run.global_step >= run.max_train_steps or not acc.is_main_process:
        return
    if (epoch + 1) % cfg.save_model_epochs == 0:
        run.health.check(run, before="the pipeline", all_processes=False)
        with ema_weights(run.unet, run.ema):
            save_pipeline(run.unet, run.scheduler, run.output_dir, conditional=cfg.conditional)


def one_step(run: Run, images, labels, lr_scheduler=None, skip_non_finite=None) -> Optional[torch.Tensor]:
    """One batch of the run: memory format, loss, backward, update (see `step.train_batch`); None when a non-finite
    update was skipped (`--max_bad_steps`)."""
    if run.cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return train_batch(run.accelerator, run.model, images, labels=labels, loss_fn=run.loss_fn, optimizer=run.optimizer,
                       lr_scheduler=lr_scheduler or run.lr_scheduler, max_grad_norm=run.cfg.max_grad_norm,
                       skip_non_finite=skip_non_finite)


def train_loop(run: Run) -> None:
    """Train until `run.max_train_steps` optimizer steps, from `run.global_step`."""
    cfg, acc = run.cfg, run.accelerator
    progress = tqdm(total=run.max_train_steps, initial=run.global_step, desc="train",
                    disable=not acc.is_local_main_process)
    meter = Meter(acc.device)
    run.health = run.health or Health(cfg, acc.device)
    run.model.train()
    run.loop_clock, run.preview_seconds = (time.monotonic(), run.global_step), 0.0
    while run.global_step < run.max_train_steps:
        epoch = run.batches.epoch
        for images, labels in run.batches:
            loss = one_step(run, images, labels, skip_non_finite=run.health.skipper)
            if loss is None:
                run.health.skip(run)
                continue
            run.health.watch(loss, run.global_step + 1)
            meter.add(loss, images.shape[0])
            if acc.sync_gradients:
                after_update(run, meter, progress)
                if run.global_step >= run.max_train_steps:
                    break
        end_of_epoch(run, epoch)
    progress.close()


def warn_if_budget_left(run: Run) -> None:
    """Say so when a budgeted run finished its plan with over a fifth of its budget unused: its steps were timed
    (before training, and again at its re-plans) at a busier moment than the run then met."""
    if run.plan is None or run.plan.budget_s is None or not run.started:
        return
    left = run.plan.budget_s - (time.monotonic() - run.started)
    if left > 0.2 * run.plan.budget_s:
        logger.warning(f"The run finished its {run.plan.total_steps} planned steps with {left:.0f} s of its "
                       f"{run.plan.budget_s:.0f} s budget unused: the step time it planned from "
                       f"({run.plan.step_s:.3f} s) was slower than the run then met (was the machine busy?).")


def finish(run: Run, token: Optional[str]) -> Path:
    """Final checkpoint, pipeline folder (EMA weights when EMA is on), samples, GIF, card, push."""
    cfg, acc = run.cfg, run.accelerator
    run.health = run.health or Health(cfg, acc.device)
    warn_if_budget_left(run)
    if cfg.checkpointing_steps and not (run.output_dir / f"checkpoint-{run.global_step}").is_dir():
        checkpoint(run)
    if acc.is_main_process:
        run.health.check(run, before="the pipeline", all_processes=False)
        unet = run.unet
        with ema_weights(unet, run.ema):
            save_pipeline(unet, run.scheduler, run.output_dir, conditional=cfg.conditional)
            grid, _ = run.previewer.final(unet)
        write_trainer_state(run.output_dir, global_step=run.global_step, history=run.history, plan=run.plan,
                            threads=run.threads, stopped_at=run.stopped_at)
        write_card(cfg, run.source, sample_image=grid,
                   run=training_run(run.global_step, run.plan, run.threads, run.stopped_at))
        if cfg.push_to_hub:
            push(cfg, token)
    acc.wait_for_everyone()
    acc.end_training()
    return run.output_dir


# --- the budget ---------------------------------------------------------------------------------------------------

# optimizer steps run (and then undone) to measure a budgeted run's step time, after untimed warm-up steps
MEASURED_STEPS, WARMUP_STEPS = 8, 2
# denoising steps of the grid timed to price a preview (scaled up to the grid's own steps)
PREVIEW_PROBE_STEPS = 5


def _forever(batches):
    while True:
        yield from batches


class _NoSchedule:
    def step(self):
        pass


def _steps(run: Run, batches, count: int) -> None:
    """`count` optimizer steps through `one_step` at a zero learning rate, each with its EMA update as in the loop;
    returns when the device has finished."""
    for _ in range(count * run.cfg.gradient_accumulation_steps):
        loss = one_step(run, *next(batches), lr_scheduler=_NoSchedule())
        if run.ema is not None and run.accelerator.sync_gradients:
            run.ema.step(run.model.parameters())
    loss.item()


def measure_step_seconds(run: Run) -> float:
    """Seconds per optimizer step of this run (its EMA update included), measured on its own model, optimizer and data
    at learning rate 0, then undone: weights, BatchNorm statistics, optimizer and EMA state, data position and RNG are
    as they were before."""
    model_state = {k: v.detach().clone() for k, v in run.unet.state_dict().items()}
    optimizer_state, data_state = copy.deepcopy(run.optimizer.state_dict()), run.batches.state_dict()
    ema_state = copy.deepcopy(run.ema.state_dict()) if run.ema is not None else None
    learning_rates, accelerator_step = [group["lr"] for group in run.optimizer.param_groups], run.accelerator.step
    devices = [run.accelerator.device] if run.accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for group in run.optimizer.param_groups:
            group["lr"] = 0.0
        batches = _forever(run.batches)
        _steps(run, batches, WARMUP_STEPS)
        start = time.perf_counter()
        _steps(run, batches, MEASURED_STEPS)
        seconds = (time.perf_counter() - start) / MEASURED_STEPS
    run.unet.load_state_dict(model_state)
    run.optimizer.load_state_dict(optimizer_state)
    if ema_state is not None:
        run.ema.load_state_dict(ema_state)
    for group, lr in zip(run.optimizer.param_groups, learning_rates):
        group["lr"] = lr
    run.batches.load_state_dict(data_state)
    run.accelerator.step = accelerator_step
    return seconds


def measure_preview_seconds(run: Run) -> float:
    """Seconds one planned preview takes (a grid from the raw weights, and one from the EMA weights with EMA),
    scaled up from a grid of `PREVIEW_PROBE_STEPS` denoising steps after a one-step warm-up: timing a whole
    500-step DDPM grid would spend minutes of the budget it plans (about 2 of 10 at 28 px on one thread)."""
    steps = run.previewer.num_inference_steps
    probe = min(steps, PREVIEW_PROBE_STEPS)
    run.previewer.grid(run.unet, num_inference_steps=1)
    start = time.perf_counter()
    run.previewer.grid(run.unet, num_inference_steps=probe)
    return (time.perf_counter() - start) * steps / probe * (2 if run.ema is not None else 1)


def plan_budget(run: Run) -> RunPlan:
    """Measure the step and preview times, then fix the plan of the steps that fit `--time_budget_minutes`; every
    process gets the main process's plan."""
    step_s = measure_step_seconds(run)
    plan = [None]
    if run.accelerator.is_main_process:
        preview_s = measure_preview_seconds(run)
        plan[0] = plan_for_budget(budget_s=60.0 * run.cfg.time_budget_minutes, steps_per_epoch=max(1, len(run.batches)
                                  // run.cfg.gradient_accumulation_steps), elapsed_s=time.monotonic() - run.started,
                                  step_s=step_s, preview_s=preview_s)
    broadcast_object_list(plan)
    return plan[0]


def replan_budget(run: Run) -> None:
    """Plan the rest of a budgeted run again (`plan.replan`) from the pace of the steps this loop has run since it
    started or last re-planned, their logging and checkpoints included and their previews (timed as written) left out;
    every process follows the main process's plan."""
    plan, before = [None], run.plan
    if run.accelerator.device.type == "cuda":
        torch.cuda.synchronize()  # the host runs ahead of the GPU between logging steps: time finished steps only
    now, (started, first_step) = time.monotonic(), run.loop_clock
    if run.accelerator.is_main_process:
        # the previews written since then, as long as they took (one due at this very step comes after the re-plan)
        step_s = max(1e-6, now - started - run.preview_seconds) / max(1, run.global_step - first_step)
        plan[0] = replan(before, done_steps=run.global_step, elapsed_s=now - run.started, step_s=step_s)
    broadcast_object_list(plan)
    adopt_plan(run, plan[0])
    run.loop_clock, run.preview_seconds = (now, run.global_step), 0.0  # a later re-plan times the steps from here
    again = f"; it plans again after step {run.plan.replan_step}" if run.plan.replan_step else ""
    logger.info(f"Re-planned at step {run.global_step}: its steps since step {first_step} took {run.plan.step_s:.3f} s "
                f"each (planned from: {before.step_s:.3f} s), so {run.plan.total_steps} steps in all instead of "
                f"{before.total_steps}, previews after steps {list(run.plan.preview_steps)}{again}.")


def stored_plan(cfg) -> Optional[RunPlan]:
    """The plan of the budgeted run a budgeted run resumes from (it keeps that plan rather than measuring again), else
    None. A fixed-length run plans from its flags, so a resume may lengthen or shorten it as before."""
    path = find_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint)
    if cfg.time_budget_minutes is None or path is None or not (Path(path) / STATE_FILE).is_file():
        return None
    saved = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True).get("plan")
    if not saved or saved.get("budget_s") is None:
        return None
    return RunPlan(**{**saved, "preview_steps": tuple(saved["preview_steps"])})


def train(cfg) -> Path:
    """Run a full training job described by `cfg`, holding its output folder; returns the output folder."""
    started = time.monotonic()
    check_config(cfg)
    accelerator = make_accelerator(cfg)
    threads = use_cpu_threads(cfg.cpu_threads, accelerator)
    if threads is not None:
        logger.info(f"Training on the CPU with {threads.threads} thread(s) per process ({threads.reason}); "
                    f"OpenMP waiting: {threads.omp_wait_policy}.")
    with own_output_dir(cfg.output_dir, is_main_process=accelerator.is_main_process):
        return train_in_own_folder(cfg, accelerator, started=started, threads=threads)


def train_in_own_folder(cfg, accelerator, *, started: float, threads=None) -> Path:
    token = check_outputs(cfg, accelerator.process_index)
    with accelerator.main_process_first():
        source = load_source(cfg)
    check_data(cfg, source, accelerator.num_processes)
    if cfg.seed is not None:
        set_seed(cfg.seed, device_specific=True)  # own noise per process; DDP syncs the initial weights
    channels = image_channels(cfg, source)
    check_memory(cfg, source, channels, accelerator)
    batches = make_batches(cfg, source, accelerator, channels)
    run = build_run(cfg, accelerator, source, batches, channels, plan=stored_plan(cfg))
    run.started, run.threads = started, threads
    if run.plan is None:
        adopt_plan(run, plan_budget(run))
    if run.plan.budget_s is not None:
        logger.info(f"Time budget {run.plan.budget_s / 60:g} min: {run.plan.total_steps} steps of "
                    f"{run.plan.step_s:.3f} s planned, previews after steps {list(run.plan.preview_steps)}.")
    accelerator.wait_for_everyone()  # every process has passed every check before anything is written
    prepare_output_dir(run)
    resume(run)
    train_loop(run)
    return finish(run, token)
