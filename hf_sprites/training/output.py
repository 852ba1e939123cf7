"""What a training run leaves behind: checkpoints, sample grids, the pipeline folder, its model card, the Hub push.

Checkpoints: `output_dir/checkpoint-<step>/` holds `accelerator.save_state` (model, optimizer, LR scheduler, RNG
of every process, grad scaler) plus `training_state.pt` (global step, EMA state, data position, loss history).
Previews: `samples/step-<N>[-ema].png` grids from `SpritePipeline` with a fixed seed (never the global RNG, so
previews do not change the run), one column per class for conditional models. The pipeline folder: a stock
`DDPMPipeline` for unconditional runs (`DDPMPipeline.from_pretrained(folder)` after `import hf_sprites`), a
`SpritePipeline` for runs trained on labels, with `README.md`, `samples.png`, `denoising.gif`.

Everything is written beside its place and renamed into it (`hf_sprites.atomic`), so an interrupted run never
leaves a half-written checkpoint, pipeline or file; old checkpoints are removed only after the new one exists, and a
full disk is reported as such. Whether a run may write into the folder at all is decided by `check_outputs`, under
the folder's lock (the last section).
Logs: `--report_to` (diffusers' name; `--logger` is `train_unconditional.py`'s) takes one or more of accelerate's
trackers (tensorboard with hf_sprites, wandb with `hf-sprites[trackers]`, trackio, comet_ml, mlflow, ...), `all` or
`none`; scalars go through `accelerator.log`, sample grids through `log_image` to every tracker that takes images,
files under `output_dir/logging_dir` (wandb: `logging_dir/wandb/`).

Example:
    >>> import tempfile, pathlib
    >>> from hf_sprites.training.output import find_checkpoint
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for step in (5, 40, 10):
    ...     (root / f"checkpoint-{step}").mkdir()
    ...     (root / f"checkpoint-{step}" / "training_state.pt").touch()
    >>> find_checkpoint(root, "latest").name
    'checkpoint-40'
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from accelerate.utils import RNG_STATE_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME
from accelerate.utils import load as accelerate_load
from diffusers import DDPMPipeline
from diffusers.schedulers.scheduling_utils import SCHEDULER_CONFIG_NAME
from diffusers.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

from hf_sprites.atomic import (atomic_write_text, is_leftover, make_staging_dir, move_into_place, raise_if_disk_full,
                               recover_folder, remove_tree, staging_path)
from hf_sprites.evaluation.sampling import default_steps, swap_sampler
from hf_sprites.hub.card import write_model_card
from hf_sprites.hub.push import DEFAULT_IGNORE, check_repo_id, push_folder, resolve_token
from hf_sprites.pipelines import SpritePipeline
from hf_sprites.viz import denoising_gif, image_grid, save_atomic

from .config import TrainConfigError

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
INDEX_FILE = "model_index.json"
PIPELINE_ENTRIES = ("unet", "scheduler")
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


# --- checkpoints ---------------------------------------------------------------------------------------------------


def checkpoint_step(name: str) -> Optional[int]:
    """The step of a `checkpoint-<step>` name, None for any other name.

    >>> checkpoint_step("checkpoint-40"), checkpoint_step("checkpoint-x")
    (40, None)
    """
    match = _CHECKPOINT_NAME.match(name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir) -> list[Path]:
    """Finished checkpoints (`checkpoint-<step>` folders with a `training_state.pt`) in `output_dir`, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(checkpoint_step(p.name), p) for p in root.iterdir() if checkpoint_step(p.name) is not None]
    return [path for _, path in sorted(found) if is_checkpoint(path)]


def find_checkpoint(output_dir, spec: Optional[str]) -> Optional[Path]:
    """Resolve `--resume_from_checkpoint`: "latest" (None when there is none yet) or a folder path."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    return Path(spec)


def is_checkpoint(path) -> bool:
    """Whether `path` is a complete checkpoint folder written by `save_checkpoint`."""
    return (Path(path) / STATE_FILE).is_file()


def save_checkpoint(accelerator, output_dir, *, step: int, training_state: dict, total_limit: Optional[int] = None):
    """Write checkpoint-`step` from every process (call it on all of them); returns its path."""
    final = Path(output_dir) / f"checkpoint-{step}"
    staging = staging_path(final)  # one name every process knows
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()  # every process has written its RNG state before the folder is renamed
        if accelerator.is_main_process:
            torch.save(training_state, staging / STATE_FILE)
            move_into_place(staging, final)
    except (OSError, RuntimeError) as err:
        raise_if_disk_full(err, final)
        raise
    finally:
        if accelerator.is_main_process and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if accelerator.is_main_process:
        for old in list_checkpoints(output_dir)[:-total_limit] if total_limit else []:
            remove_tree(old)
            logger.info("Removed old checkpoint %s (checkpoints_total_limit=%d)", old, total_limit)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint_files(path, process_index: int = 0) -> dict:
    """Read what a resume needs from checkpoint `path` beyond the weights: `training_state` (CPU tensors) and this
    process's random states, as accelerate reads them; raises naming the first file that is missing or damaged."""
    path = Path(path)
    if not ((path / SAFE_WEIGHTS_NAME).is_file() or (path / WEIGHTS_NAME).is_file()):
        raise FileNotFoundError(f"{path / SAFE_WEIGHTS_NAME} is missing")
    loaded = {}
    for name in (f"{RNG_STATE_NAME}_{process_index}.pkl", STATE_FILE):
        try:
            loaded[name] = accelerate_load(path / name, map_location="cpu")
        except Exception as err:  # noqa: BLE001  (missing, truncated or tampered: all mean the same to a resume)
            reason = " ".join(str(err).split())[:200]
            raise ValueError(f"{path / name} cannot be read ({type(err).__name__}: {reason})") from None
    return loaded[STATE_FILE]


def load_checkpoint(accelerator, path) -> dict:
    """Restore model, optimizer, LR scheduler and RNG through accelerate; return `training_state` (CPU tensors)."""
    state = load_checkpoint_files(path, accelerator.process_index)
    accelerator.load_state(str(path))
    return state


# --- previews ------------------------------------------------------------------------------------------------------


def preview_conditioning(count: int, num_classes: Optional[int], label_kind: Optional[str]) -> tuple[dict, Optional[int]]:
    """Pipeline keyword arguments asking for every class in turn, and the grid width (one column per class).

    >>> preview_conditioning(6, num_classes=3, label_kind="int")
    ({'class_labels': [0, 1, 2, 0, 1, 2]}, 3)
    """
    if not num_classes:
        return {"batch_size": count}, None
    count = max(num_classes, count - count % num_classes)
    classes = [i % num_classes for i in range(count)]
    if label_kind == "multi_hot":
        return {"context": torch.eye(num_classes)[classes].tolist()}, num_classes
    return {"class_labels": classes}, num_classes


@contextlib.contextmanager
def ema_weights(model, ema):
    """Temporarily load the EMA weights into `model` (no-op without EMA)."""
    if ema is None:
        yield model
        return
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())


@contextlib.contextmanager
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Previewer:
    """Sample grids of the model being trained: `samples/step-<N>[-ema].png` (also sent to the trackers) and the
    final `samples.png` + `denoising.gif`."""

    def __init__(self, cfg, scheduler, *, num_classes: Optional[int] = None, label_kind: Optional[str] = None):
        self.cfg, self.scheduler, self.seed = cfg, scheduler, cfg.seed or 0
        self.conditioning, self.nrow = preview_conditioning(cfg.eval_batch_size, num_classes, label_kind)
        if num_classes and cfg.guidance_scale != 1.0:
            self.conditioning["guidance_scale"] = cfg.guidance_scale

    @property
    def num_inference_steps(self) -> int:
        """Denoising steps of a grid: --ddpm_num_inference_steps, else the preview sampler's customary count."""
        return self.cfg.ddpm_num_inference_steps or default_steps(self.scheduler, self.cfg.preview_sampler)

    def grid(self, unet, intermediates: bool = False, num_inference_steps: Optional[int] = None):
        """One grid of samples (and the intermediate frames when asked), from `SpritePipeline` with a fixed seed;
        `num_inference_steps` overrides the grid's own (the budget planner times a few steps)."""
        pipe = SpritePipeline(unet=unet, scheduler=type(self.scheduler).from_config(self.scheduler.config))
        pipe.set_progress_bar_config(disable=True)
        swap_sampler(pipe, self.cfg.preview_sampler)
        with eval_mode(unet):
            out = pipe(**self.conditioning, num_inference_steps=num_inference_steps or self.num_inference_steps,
                       generator=torch.Generator(device=unet.device).manual_seed(self.seed),
                       return_intermediates=intermediates)
        return image_grid(out.images, nrow=self.nrow, scale=max(1, 64 // unet.config.sample_size)), out.intermediates

    def write(self, accelerator, unet, *, ema, step: int) -> list[Path]:
        """Grids from the raw weights and (with EMA) the EMA weights; main process only."""
        written = []
        for suffix, weights in [("", None)] + ([("-ema", ema)] if ema is not None else []):
            with ema_weights(unet, weights):
                grid, _ = self.grid(unet)
            written.append(save_atomic(grid, Path(self.cfg.output_dir) / "samples" / f"step-{step:06d}{suffix}.png"))
            log_image(accelerator, grid, tag=f"samples{suffix or '-raw'}", step=step)
        return written

    def final(self, unet) -> tuple[Path, Optional[Path]]:
        """The final grid (`samples.png`) and, with --save_gif, the denoising animation (`denoising.gif`)."""
        folder = Path(self.cfg.output_dir)
        grid, frames = self.grid(unet, intermediates=self.cfg.save_gif)
        gif = denoising_gif(frames, folder / "denoising.gif", nrow=self.nrow) if self.cfg.save_gif else None
        return save_atomic(grid, folder / "samples.png"), gif


# --- the pipeline folder, its card, the push ------------------------------------------------------------------------


def pipeline_class(conditional: bool):
    """`SpritePipeline` for runs trained on labels, else diffusers' `DDPMPipeline`.

    >>> pipeline_class(conditional=False).__name__
    'DDPMPipeline'
    """
    return SpritePipeline if conditional else DDPMPipeline


def save_pipeline(unet, scheduler, output_dir, *, conditional: bool) -> Path:
    """Save `unet` + `scheduler` as a pipeline folder in `output_dir`: each entry is written aside and renamed into
    place, `model_index.json` last, so the folder never holds a half-written pipeline."""
    output_dir = Path(output_dir)
    staging = make_staging_dir(output_dir / "pipeline")
    try:
        pipeline_class(conditional)(unet=unet, scheduler=scheduler).save_pretrained(staging, safe_serialization=True)
        for name in PIPELINE_ENTRIES:
            move_into_place(staging / name, output_dir / name)
        os.replace(staging / INDEX_FILE, output_dir / INDEX_FILE)
    except (OSError, RuntimeError) as err:
        raise_if_disk_full(err, output_dir)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def write_trainer_state(output_dir, *, global_step: int, history: list, plan=None, threads=None,
                        stopped_at: Optional[int] = None) -> Path:
    """`trainer_state.json`: the final step, the logged (step, loss, images/s) rows, the run's plan (length, time
    budget, measured step time, preview steps), its CPU threads and why, and where a spent budget stopped it.
    Always valid JSON: a NaN or infinite loss is written as null."""
    state = {
        "global_step": global_step,
        "log_history": [dict(zip(("step", "loss", "img_per_s"), map(_json_number, row))) for row in history],
        "plan": plan.to_dict() if plan is not None else None,
        "cpu_threads": {"threads": threads.threads, "reason": threads.reason} if threads is not None else None,
        "stopped_by_budget_at": stopped_at,
    }
    return atomic_write_text(Path(output_dir) / "trainer_state.json", json.dumps(state, indent=1, allow_nan=False))


def _json_number(value):
    """`value`, or None (JSON null) for NaN and infinities, which JSON cannot hold.

    >>> _json_number(float("nan")), _json_number(2)
    (None, 2)
    """
    return None if isinstance(value, float) and not np.isfinite(value) else value


BOOKKEEPING = ("output_dir", "overwrite_output_dir", "cache_dir", "logging_dir", "resume_from_checkpoint", "push_to_hub",
               "hub_private_repo", "dataloader_num_workers", "logger", "logging_steps", "save_gif", "cache_on_device",
               "save_images_epochs", "save_model_epochs", "checkpointing_steps", "checkpoints_total_limit",
               "train_data_dir", "dataset_name", "config", "license")  # issue 9: data and license have their own lines
# settings that only mean something for one model kind
MODEL_ONLY = {
    "context_unet": ("n_feat", "n_cfeat"),
    "unet2d": ("block_out_channels", "down_block_types", "up_block_types", "layers_per_block"),
    "basic_unet": ("noise_distribution", "data_range"),
}


def card_hyperparameters(cfg) -> dict:
    """The settings shown in the card: the public config minus local paths, bookkeeping and other models' knobs."""
    hidden = set(BOOKKEEPING)
    for kind, names in MODEL_ONLY.items():
        hidden.update(names if kind != cfg.model else ())
    if not cfg.conditional:
        hidden.add("cond_drop_prob")
    if not cfg.use_ema:
        hidden.update(("ema_inv_gamma", "ema_power", "ema_max_decay"))
    return {k: v for k, v in cfg.public_dict().items() if k not in hidden and v is not None}


def training_run(global_step: int, plan=None, threads=None, stopped_at: Optional[int] = None) -> dict:
    """What the card says of the run: its steps, its time-budget plan, its CPU threads, where a budget stopped it."""
    budgeted = plan is not None and plan.budget_s is not None
    run = {"steps": global_step, "time_budget_minutes": plan.budget_s / 60 if budgeted else None,
           "planned_steps": plan.total_steps if budgeted else None, "step_seconds": plan.step_s if budgeted else None,
           "stopped_by_budget_at": stopped_at, "cpu_threads": threads.threads if threads is not None else None}
    if budgeted and plan.replanned_at is not None:
        run.update(replanned_at=plan.replanned_at, initial_planned_steps=plan.initial_total_steps,
                   initial_step_seconds=plan.initial_step_s)
    return run


def write_card(cfg, source, *, sample_image: Optional[Path], run: Optional[dict] = None) -> Optional[Path]:
    """The model card (README.md) through `hf_sprites.hub.card.write_model_card`, without secrets; `run` is
    `training_run(...)`."""
    return write_model_card(
        cfg.output_dir,
        repo_id=cfg.hub_model_id,
        dataset_name=cfg.dataset_name or cfg.train_data_dir or source.source,  # the card names local data, no path
        hyperparameters=card_hyperparameters(cfg),
        sample_image=None if sample_image is None else Path(sample_image).resolve(),
        conditional=cfg.conditional,
        class_names=source.class_names if cfg.conditional else None,
        extra_tags=("hf-sprites-train", cfg.model),
        license=cfg.license,
        training_run=run,
    )


def hub_repo_id(cfg) -> str:
    """The repository to push to: --hub_model_id, or the output folder's name (as diffusers does)."""
    return cfg.hub_model_id or Path(cfg.output_dir).resolve().name


def push(cfg, token: Optional[str]) -> None:
    """Upload the output folder with `hf_sprites.hub.push.push_folder` (call on the main process only)."""
    tracker_files = Path(cfg.logging_dir).parts[0]  # tracker logs hold the run's settings, local paths included
    push_folder(cfg.output_dir, hub_repo_id(cfg), token=token, private=cfg.hub_private_repo,
                commit_message="Upload pipeline trained with hf_sprites", ignore=(*DEFAULT_IGNORE, tracker_files))



# --- experiment trackers: which of accelerate's trackers a run logs to, images to each -------------------------------


PACKAGES = {"comet_ml": "comet-ml"}  # pip names that differ from the tracker's name
EXTRAS = {"wandb": "trackers"}  # trackers that an hf-sprites extra installs
PROJECT_NAME = "train"  # accelerate's run name: tensorboard writes logging_dir/train/, wandb's project


def installed_trackers() -> list[str]:
    """The trackers accelerate finds installed here."""
    from accelerate.tracking import get_available_trackers

    return [str(getattr(tracker, "value", tracker)) for tracker in get_available_trackers()]


def tracker_names(requested) -> list[str]:
    """The trackers to log to: the `requested` names with "all" resolved to the installed ones, [] for "none"."""
    names = list(dict.fromkeys(requested))
    if "none" in names:
        return []
    return installed_trackers() if "all" in names else names


def tracker_problem(requested) -> Optional[str]:
    """Why the `requested` trackers cannot be used (naming the fix), or None when they can. accelerate skips a
    tracker whose package is missing without a word; `config.check_config` turns this into an error instead.

    >>> tracker_problem(("none", "wandb"))
    "--report_to none wandb: 'none' and 'all' cannot be combined with other trackers"
    >>> tracker_problem(("tensorboard",)) is None
    True
    """
    names = set(requested)
    if len(names) > 1 and names & {"none", "all"}:
        return f"--report_to {' '.join(requested)}: 'none' and 'all' cannot be combined with other trackers"
    installed = installed_trackers()
    for name in tracker_names(requested):
        if name not in installed:
            package = PACKAGES.get(name, name)
            extra = f"`pip install 'hf-sprites[{EXTRAS[name]}]'` or " if name in EXTRAS else ""
            return (f"--report_to {name} needs the {package} package, which is not installed; install it with {extra}"
                    f"`pip install {package}`, or log to an installed tracker ({', '.join(installed) or 'none'})")
    return None


def init_kwargs(names: list[str], logging_dir: Path, run_name: str) -> dict:
    """Per-tracker keyword arguments for `accelerator.init_trackers`: files go under `logging_dir`."""
    kwargs = {}
    if "wandb" in names:
        kwargs["wandb"] = {"dir": str(logging_dir), "name": run_name}
    return kwargs


def log_image(accelerator, image, *, tag: str, step: int) -> None:
    """Send a PIL image (a sample grid) to every active tracker that takes images."""
    pixels = np.asarray(image.convert("RGB"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({tag: pixels[None]}, step=step, dataformats="NHWC")
        elif hasattr(tracker, "log_images"):
            tracker.log_images({tag: [image.convert("RGB")]}, step=step)


# --- the output folder: one run at a time, only what the package wrote is replaced ------------------------------------


# The output folder a run owns: one run at a time, what a run may write over, and what a killed run left behind.
#
# A run holds `.hf_sprites.lock` in its `--output_dir` from start to end (`fcntl.flock`, which the kernel releases when
# the process dies, so a killed run never blocks the next one; the file names the holder for the message a second run
# gets). Under the lock, before any work, `check_outputs` decides whether the run may write into the folder:
#
# - a new or empty folder (the lock and leftovers of interrupted writes do not count): yes;
# - a folder with a finished checkpoint and `--resume_from_checkpoint`: yes, the run continues that run;
# - any other folder: only with `--overwrite_output_dir`;
#
# and whenever the folder is not empty, nothing that hf_sprites did not write may sit where the run writes (inside
# `unet/` or `scheduler/`, which are replaced whole, or a `checkpoint-N/` without `training_state.pt`): the run lists
# those entries and stops, leaving them untouched. `prepare_folder` then finishes or undoes what a killed run left
# (`hf_sprites.atomic.recover_folder`) and, with `--overwrite_output_dir`, removes the previous run's checkpoints and
# names every entry the new run will replace. Files the package never writes (notes, other folders) are never touched.



LOCK_FILE = ".hf_sprites.lock"
# folders a run replaces whole, with the files hf_sprites writes in them
REPLACED_FOLDERS = {"unet": (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME), "scheduler": (SCHEDULER_CONFIG_NAME,)}
WRITTEN_FILES = (INDEX_FILE, "README.md", "samples.png", "denoising.gif", "trainer_state.json")
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


# --- one run at a time ---------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on an output folder for the life of a run; `acquire` raises `TrainConfigError` naming the
    run that holds it."""

    def __init__(self, folder):
        self.folder, self.path, self._fd = Path(folder), Path(folder) / LOCK_FILE, None

    def acquire(self) -> "RunLock":
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno in _NO_LOCKS:
                    logger.warning("%s cannot be locked (%s); make sure no other run writes to it", self.folder, err)
                    return self
                raise TrainConfigError(
                    f"--output_dir {self.folder} is in use by another training run ({_describe(holder)}); wait for it "
                    f"to end or choose another --output_dir. If that run no longer exists (a crashed machine sharing "
                    f"this folder), delete {self.path}") from None
            if _same_file(fd, self.path):
                self._fd = fd
            else:  # its previous owner removed the file between our open and our lock: lock the new one
                os.close(fd)
        previous = _read_holder(self._fd)
        if previous:
            logger.warning("Took over %s from a run that ended without releasing it (%s).", self.path,
                           _describe(previous))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "no details recorded"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def own_output_dir(folder, *, is_main_process: bool = True):
    """Hold the lock on `folder` (created when missing) for the block, on the main process; a folder this created and
    that stays empty is removed again, so a run stopped by bad input leaves nothing behind."""
    folder = Path(folder)
    if not is_main_process:
        yield None
        return
    _check_not_a_file(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder)
    try:
        yield lock.acquire()
    finally:
        lock.release()
        if created and not any(folder.iterdir()):
            folder.rmdir()


# --- may this run write here? --------------------------------------------------------------------------------------


def _check_not_a_file(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TrainConfigError(f"--output_dir {out} is a file; pass a folder path")


def occupied(folder) -> list[str]:
    """The entries of `folder` that count: everything but the lock and leftovers of interrupted writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE and not is_leftover(p.name))


def foreign_entries(folder) -> list[str]:
    """What sits where a run writes but was not written by hf_sprites (a run would destroy it)."""
    folder, found = Path(folder), []
    for name, known in REPLACED_FOLDERS.items():
        place = folder / name
        if place.is_dir():
            found += [f"{name}/{p.name}" for p in sorted(place.iterdir()) if p.name not in known]
        elif place.exists():
            found.append(f"{name} (a file where the run writes a folder)")
    found += [f"{name}/ (a folder where the run writes a file)" for name in WRITTEN_FILES if (folder / name).is_dir()]
    complete = set(list_checkpoints(folder))
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if checkpoint_step(path.name) is not None and path not in complete:
            found.append(f"{path.name}/ (no {STATE_FILE}, so not a checkpoint of hf_sprites)")
    return found


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def check_folder(cfg) -> None:
    """Whether this run may write into `--output_dir` (the rules in the module docstring); raises `TrainConfigError`."""
    out, spec = Path(cfg.output_dir), cfg.resume_from_checkpoint
    resume_point = find_checkpoint(out, spec)
    entries = occupied(out)
    if not entries:
        return
    continuing = resume_point is not None and _inside(resume_point, out)
    if not (continuing or cfg.overwrite_output_dir):
        reason = f"holds no checkpoint to resume ({', '.join(entries[:5])})" if spec == "latest" else "is not empty"
        raise TrainConfigError(
            f"--output_dir {out} {reason}; pass --overwrite_output_dir to train into it anyway (it replaces only what "
            "hf_sprites writes), --resume_from_checkpoint latest to continue the run whose checkpoints it holds, or "
            "choose another folder")
    foreign = foreign_entries(out)
    if foreign:
        raise TrainConfigError(
            f"--output_dir {out} holds files hf_sprites did not write where this run would write: "
            f"{', '.join(foreign)}; move them out of the folder or choose another --output_dir (nothing was changed)")


def check_outputs(cfg, process_index: int = 0) -> Optional[str]:
    """The output folder, the checkpoint to resume and (with --push_to_hub) the Hub repo id and token, checked before
    any work; raises `TrainConfigError`. Returns the Hub token when pushing, else None."""
    spec, out = cfg.resume_from_checkpoint, Path(cfg.output_dir)
    _check_not_a_file(out)
    if spec and spec != "latest" and not is_checkpoint(spec):
        found = [p.name for p in list_checkpoints(out)]
        raise TrainConfigError(f"--resume_from_checkpoint {spec} is not a checkpoint folder (no {STATE_FILE}); pass "
                               f"'latest' or one of the checkpoint-N folders{f' in {out}: {found}' if found else ''}")
    check_folder(cfg)
    resume_point = find_checkpoint(out, spec)
    if resume_point is not None:
        check_checkpoint(resume_point, process_index)
    if not cfg.push_to_hub:
        return None
    check_repo_id(hub_repo_id(cfg))
    return resolve_token(cfg.hub_token)


def check_checkpoint(path, process_index: int = 0) -> None:
    """Every file of checkpoint `path` that this process will read must load; a resume that silently skipped one
    (accelerate ignores an unreadable random state) would no longer continue the same run."""
    try:
        load_checkpoint_files(path, process_index)
    except Exception as err:  # noqa: BLE001  (torch, pickle and OS errors alike mean: this file is damaged)
        others = [p.name for p in list_checkpoints(Path(path).parent) if p != Path(path)]
        raise TrainConfigError(
            f"checkpoint {path} cannot be resumed: {err}; restore that file, or resume from another checkpoint with "
            f"--resume_from_checkpoint PATH{f' (others here: {others})' if others else ''}") from None


# --- getting the folder ready --------------------------------------------------------------------------------------


def prepare_folder(cfg, *, resuming: bool) -> None:
    """Finish or undo interrupted writes; with --overwrite_output_dir (and no resume) remove the previous run's
    checkpoints and name what the run will replace. Main process only, under the lock."""
    out = Path(cfg.output_dir)
    for line in recover_folder(out):
        logger.warning("Recovered %s: %s", out, line)
    if not cfg.overwrite_output_dir or resuming:
        return
    old = list_checkpoints(out)
    replaced = [name for name in (*WRITTEN_FILES, *REPLACED_FOLDERS, "samples") if (out / name).exists()]
    if old or replaced:
        logger.warning("--overwrite_output_dir: removing the previous run's %s; replacing %s as this run writes them",
                       ", ".join(p.name for p in old) or "(no checkpoints)", ", ".join(replaced) or "nothing else")
    for path in old:
        remove_tree(path)
