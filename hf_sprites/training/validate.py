"""Every check on a training run's inputs, run before anything is trained or written.

Each problem raises one `TrainConfigError` (a `ValueError`) whose message names the problem and the fix.
`check_config` needs only the settings; `check_data` runs once the data is loaded (the data layer has
already rejected unknown datasets, missing image columns and out-of-range labels by then).

Example:
    >>> from hf_sprites.training.config import parse_train_args
    >>> from hf_sprites.training.validate import check_config
    >>> try:
    ...     check_config(parse_train_args(["--model", "context_unet", "--resolution", "18"]))
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    ContextUnet cannot take 18px images (it needs a multiple of 4)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hf_sprites.hub.push import check_repo_id, resolve_token

from .checkpoints import is_checkpoint, list_checkpoints


class TrainConfigError(ValueError):
    """A training setting or input that cannot work. The message says what to change."""


def _fail(message: str) -> None:
    raise TrainConfigError(message)


def check_resolution(cfg) -> None:
    """The image size must fit the model's down-sampling."""
    size = cfg.resolution
    if size < 4:
        _fail(f"--resolution {size} is too small; use at least 8 pixels")
    if cfg.model in ("context_unet", "basic_unet") and size % 4:
        name = "ContextUnet" if cfg.model == "context_unet" else "BasicUNet"
        _fail(f"{name} cannot take {size}px images (it needs a multiple of 4); use --resolution {size - size % 4 or 4}"
              f" or {size + 4 - size % 4}")
    if cfg.model == "unet2d":
        factor = 2 ** (len(cfg.block_out_channels) - 1)
        if size % factor:
            _fail(f"UNet2DModel with {len(cfg.block_out_channels)} blocks halves the image {len(cfg.block_out_channels) - 1}"
                  f" times, so --resolution must be a multiple of {factor} (got {size}); change --resolution or use "
                  "fewer --block_out_channels")


def check_unet2d_blocks(cfg) -> None:
    if cfg.model != "unet2d":
        return
    n = len(cfg.block_out_channels)
    if len(cfg.down_block_types) != n or len(cfg.up_block_types) != n:
        _fail(f"--block_out_channels has {n} entries but --down_block_types has {len(cfg.down_block_types)} and "
              f"--up_block_types {len(cfg.up_block_types)}; give one block type per channel entry")
    odd = [c for c in cfg.block_out_channels if c % 32]
    if odd:
        _fail(f"UNet2DModel's GroupNorm uses 32 groups, so every --block_out_channels entry must be a multiple of 32 "
              f"(got {odd}); e.g. --block_out_channels 32 64 64")


def check_model_options(cfg) -> None:
    """Combinations of model, scheduler and conditioning that cannot train."""
    if cfg.model == "basic_unet" and cfg.conditional:
        _fail("BasicUNet ignores labels, so it cannot train on them; drop --class_column/--conditional or use "
              "--model context_unet")
    if not 0.0 <= cfg.cond_drop_prob < 1.0:
        _fail(f"--cond_drop_prob must be in [0, 1) (the course uses 0.1), got {cfg.cond_drop_prob}")
    if cfg.cond_drop_prob > 0 and not (cfg.conditional and cfg.model == "context_unet"):
        _fail("--cond_drop_prob drops the context of a conditional ContextUnet (classifier-free guidance); use it with "
              "--model context_unet and labels (--class_column / --conditional), or set it to 0")
    if cfg.guidance_scale != 1.0 and cfg.cond_drop_prob <= 0:
        _fail(f"--guidance_scale {cfg.guidance_scale} guides against the null context, which only a model trained with "
              "context dropout knows; add --cond_drop_prob 0.1 (with labels and --model context_unet) or use "
              "--guidance_scale 1")
    if cfg.ddpm_beta_schedule == "course" and cfg.model != "basic_unet" and cfg.prediction_type != "epsilon":
        _fail(f"the course schedule (SpriteScheduler) predicts noise; use --prediction_type epsilon or another "
              f"--ddpm_beta_schedule (got --prediction_type {cfg.prediction_type})")
    if cfg.model == "context_unet" and cfg.prediction_type != "epsilon":
        _fail("ContextUnet predicts noise (the course's model); use --prediction_type epsilon or --model unet2d")


def check_numbers(cfg) -> None:
    for name in ("train_batch_size", "eval_batch_size", "gradient_accumulation_steps", "ddpm_num_steps", "num_epochs",
                 "logging_steps", "save_images_epochs", "save_model_epochs"):
        if getattr(cfg, name) < 1:
            _fail(f"--{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("max_train_steps", "checkpointing_steps", "checkpoints_total_limit", "max_train_samples"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            _fail(f"--{name} must be at least 1 when given, got {value}")
    if cfg.learning_rate <= 0:
        _fail(f"--learning_rate must be positive, got {cfg.learning_rate}")


def check_output_dir(cfg) -> None:
    """A non-empty output_dir is only reused with --overwrite_output_dir or when resuming from it."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        _fail(f"--output_dir {out} is a file; pass a folder path")
    if out.is_dir() and any(out.iterdir()) and not (cfg.overwrite_output_dir or cfg.resume_from_checkpoint):
        _fail(f"--output_dir {out} is not empty; pass --overwrite_output_dir to train into it anyway, "
              "--resume_from_checkpoint latest to continue its run, or choose another folder")


def check_resume(cfg) -> None:
    spec = cfg.resume_from_checkpoint
    if not spec or spec == "latest":
        return
    if not is_checkpoint(spec):
        found = [p.name for p in list_checkpoints(cfg.output_dir)]
        _fail(f"--resume_from_checkpoint {spec} is not a checkpoint folder (no training_state.pt); pass 'latest' or one "
              f"of the checkpoint-N folders{f' in {cfg.output_dir}: {found}' if found else ''}")


def hub_repo_id(cfg) -> str:
    """The repository to push to: --hub_model_id, or the output folder's name (as diffusers does)."""
    return cfg.hub_model_id or Path(cfg.output_dir).resolve().name


def check_push(cfg) -> Optional[str]:
    """For --push_to_hub: a valid repo id and a token, found now rather than after training. Returns the token."""
    if not cfg.push_to_hub:
        return None
    check_repo_id(hub_repo_id(cfg))
    return resolve_token(cfg.hub_token)


def check_config(cfg) -> Optional[str]:
    """All checks that need only the settings; returns the Hub token when pushing (else None)."""
    check_numbers(cfg)
    check_unet2d_blocks(cfg)
    check_resolution(cfg)
    check_model_options(cfg)
    check_output_dir(cfg)
    check_resume(cfg)
    return check_push(cfg)


def check_data(cfg, source, num_processes: int = 1) -> None:
    """Checks that need the loaded `ImageSource`."""
    if cfg.conditional and not source.num_classes:
        hint = f"--class_column {cfg.class_column} matched no labels" if cfg.class_column else "the dataset has no labels"
        _fail(f"this run trains on labels (preset {cfg.preset!r} or --conditional) but {hint} in {source.source}; "
              "pass --class_column NAME for a label column, or --no-conditional to train without labels")
    if cfg.conditional and source.label_kind == "multi_hot" and cfg.model != "context_unet":
        _fail("multi-hot / one-hot label vectors need a model with a context input; use --model context_unet")
    if cfg.conditional and cfg.model == "context_unet" and cfg.n_cfeat and cfg.n_cfeat != source.num_classes:
        _fail(f"--n_cfeat {cfg.n_cfeat} does not match the {source.num_classes} classes of {source.source}; "
              "drop --n_cfeat (it defaults to the number of classes)")
    usable = min(len(source), cfg.max_train_samples or len(source)) // num_processes
    if usable < cfg.train_batch_size:
        _fail(f"{usable} images per process is less than one batch (--train_batch_size {cfg.train_batch_size}); lower "
              "--train_batch_size or use more data")
