"""What a training run leaves behind: checkpoints, sample grids, the pipeline folder, its model card, the Hub push.

Checkpoints: `output_dir/checkpoint-<step>/` holds `accelerator.save_state` (model, optimizer, LR scheduler, RNG
of every process, grad scaler) plus `training_state.pt` (global step, EMA state, data position, loss history).
Previews: `samples/step-<N>[-ema].png` grids from `SpritePipeline` with a fixed seed (never the global RNG, so
previews do not change the run), one column per class for conditional models. The pipeline folder: a stock
`DDPMPipeline` for unconditional runs (`DDPMPipeline.from_pretrained(folder)` after `import hf_sprites`), a
`SpritePipeline` for runs trained on labels, with `README.md`, `samples.png`, `denoising.gif`.

Everything is written beside its place and renamed into it (`hf_sprites.atomic`), so an interrupted run never
leaves a half-written checkpoint, pipeline or file; old checkpoints are removed only after the new one exists, and a
full disk is reported as such. Whether a run may write into the folder at all is decided by `folder.check_outputs`,
under the folder's lock (`hf_sprites/training/folder.py`).
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
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from accelerate.utils import RNG_STATE_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME
from accelerate.utils import load as accelerate_load
from diffusers import DDPMPipeline

from hf_sprites.atomic import (atomic_write_text, make_staging_dir, move_into_place, raise_if_disk_full, remove_tree,
                               staging_path)
from hf_sprites.evaluation.sampling import default_steps, swap_sampler
from hf_sprites.hub.card import write_model_card
from hf_sprites.hub.push import DEFAULT_IGNORE, push_folder
from hf_sprites.pipelines import SpritePipeline
from hf_sprites.viz import denoising_gif, image_grid, save_atomic


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
    budget, measured step time, preview steps), its CPU threads and OpenMP wait policy and why, and where a spent
    budget stopped it. Always valid JSON: a NaN or infinite loss is written as null."""
    state = {
        "global_step": global_step,
        "log_history": [dict(zip(("step", "loss", "img_per_s"), map(_json_number, row))) for row in history],
        "plan": plan.to_dict() if plan is not None else None,
        "cpu_threads": threads.to_dict() if threads is not None else None,
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
    "context_unet": ("n_feat", "n_cfeat", "block_norm"),
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
        if plan.replanned_again_at is not None:
            run.update(replanned_again_at=plan.replanned_again_at)
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
