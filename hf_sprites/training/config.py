"""Training configuration: one dataclass, the command line that fills it, and the presets that seed it.

Values are resolved in three layers, later ones winning: the dataclass defaults (diffusers'
`train_unconditional.py` defaults where the flag exists there), a preset file from `presets/*.yaml`,
and the flags given on the command line. Without a dataset flag and without `--preset`, the
`default` preset (the embedded scikit-learn digits job) is used.

Example:
    >>> from hf_sprites.training.config import parse_train_args
    >>> cfg = parse_train_args(["--preset", "sprites", "--num_epochs", "2"])
    >>> (cfg.model, cfg.resolution, cfg.num_epochs)
    ('context_unet', 16, 2)
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

PRESET_DIR = Path(__file__).parent / "presets"
MODEL_KINDS = ("context_unet", "basic_unet", "unet2d")
LOSS_TYPES = ("l2", "l1", "huber")
# names accepted by --ddpm_beta_schedule; aliases are the names the tutorials use
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "course", "cosine", "quadratic")
BETA_SCHEDULE_ALIASES = {"cosine": "squaredcos_cap_v2", "quadratic": "scaled_linear"}
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "course")
SECRET_FIELDS = ("hub_token",)
COURSE_NUM_STEPS = 500


@dataclass
class TrainConfig:
    """Every setting of a training run (flag names follow diffusers' `train_unconditional.py`)."""

    # data
    dataset_name: Optional[str] = None
    dataset_config_name: Optional[str] = None
    train_data_dir: Optional[str] = None
    split: str = "train"
    image_column: Optional[str] = None
    class_column: Optional[str] = None
    cache_dir: Optional[str] = None
    max_train_samples: Optional[int] = None
    resolution: int = 64
    in_channels: Optional[int] = None
    center_crop: bool = False
    random_flip: bool = False
    interpolation: str = "bilinear"
    background: tuple = (255, 255, 255)
    cache_on_device: str = "auto"
    dataloader_num_workers: int = 0
    # model and diffusion
    model: str = "unet2d"
    n_feat: int = 64
    n_cfeat: Optional[int] = None
    block_out_channels: tuple = (128, 128, 256, 256, 512, 512)
    down_block_types: tuple = ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D")
    up_block_types: tuple = ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4
    layers_per_block: int = 2
    conditional: bool = False
    cond_drop_prob: float = 0.0
    ddpm_num_steps: int = 1000
    ddpm_beta_schedule: str = "linear"
    ddpm_num_inference_steps: Optional[int] = None
    prediction_type: str = "epsilon"
    noise_distribution: str = "gaussian"
    data_range: str = "-1..1"
    loss_type: str = "l2"
    guidance_scale: float = 1.0
    # optimisation
    train_batch_size: int = 16
    eval_batch_size: int = 16
    num_epochs: int = 100
    max_train_steps: Optional[int] = None
    gradient_accumulation_steps: int = 1
    optimizer: str = "adamw"
    learning_rate: float = 1e-4
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 500
    adam_beta1: float = 0.95
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-6
    adam_epsilon: float = 1e-8
    max_grad_norm: Optional[float] = 1.0
    use_ema: bool = True
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    mixed_precision: str = "no"
    channels_last: bool = False
    torch_compile: bool = False
    seed: Optional[int] = None
    # outputs
    output_dir: str = "outputs/ddpm-model"
    overwrite_output_dir: bool = False
    save_images_epochs: int = 10
    save_model_epochs: int = 10
    save_gif: bool = True
    checkpointing_steps: Optional[int] = 500
    checkpoints_total_limit: Optional[int] = None
    resume_from_checkpoint: Optional[str] = None
    logger: str = "tensorboard"
    logging_dir: str = "logs"
    logging_steps: int = 10
    # sharing
    push_to_hub: bool = False
    hub_model_id: Optional[str] = None
    hub_token: Optional[str] = field(default=None, repr=False)
    hub_private_repo: bool = False
    preset: Optional[str] = None

    def __post_init__(self):
        self.ddpm_beta_schedule = BETA_SCHEDULE_ALIASES.get(self.ddpm_beta_schedule, self.ddpm_beta_schedule)
        for name in ("background", "block_out_channels", "down_block_types", "up_block_types"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.class_column is not None:
            self.conditional = True

    @property
    def uses_embedded_default(self) -> bool:
        return self.dataset_name is None and self.train_data_dir is None

    def public_dict(self) -> dict:
        """The settings without secrets: what may be logged, saved or shown in a model card."""
        values = dataclasses.asdict(self)
        for name in SECRET_FIELDS:
            values.pop(name, None)
        return values


def available_presets() -> list[str]:
    """Names of the preset files shipped in `hf_sprites/training/presets/`."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict:
    """Read one preset file and check that every key is a `TrainConfig` field."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"Unknown preset {name!r}. Choose one of: {', '.join(available_presets())}.")
    values = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Preset {name!r} has unknown keys {unknown}; every key must be a TrainConfig field.")
    return values


def _flag(parser, name, **kwargs):
    parser.add_argument(f"--{name}", dest=name, **kwargs)


def _add_data_flags(parser):
    for name in ("dataset_name", "dataset_config_name", "train_data_dir", "split", "image_column", "class_column",
                 "cache_dir"):
        _flag(parser, name, type=str)
    _flag(parser, "max_train_samples", type=int, help="use only the first N training images")
    _flag(parser, "resolution", type=int)
    _flag(parser, "in_channels", type=int, choices=(1, 3), help="image channels (default: from the preset or the data)")
    _flag(parser, "center_crop", action=argparse.BooleanOptionalAction)
    _flag(parser, "random_flip", action=argparse.BooleanOptionalAction)
    _flag(parser, "interpolation", choices=("nearest", "bilinear"))
    _flag(parser, "background", type=int, nargs=3, metavar=("R", "G", "B"), help="fill colour under transparency")
    _flag(parser, "cache_on_device", choices=("auto", "always", "never"),
          help="keep the preprocessed dataset as one tensor on the training device (auto: when it is small)")
    _flag(parser, "dataloader_num_workers", type=int)


def _add_model_flags(parser):
    _flag(parser, "model", choices=MODEL_KINDS)
    _flag(parser, "n_feat", type=int, help="ContextUnet width")
    _flag(parser, "n_cfeat", type=int, help="ContextUnet context width (default: number of classes, or 5)")
    _flag(parser, "block_out_channels", type=int, nargs="+")
    _flag(parser, "down_block_types", type=str, nargs="+")
    _flag(parser, "up_block_types", type=str, nargs="+")
    _flag(parser, "layers_per_block", type=int)
    _flag(parser, "conditional", action=argparse.BooleanOptionalAction, help="train on the dataset's labels")
    _flag(parser, "cond_drop_prob", type=float, help="probability of dropping the labels/context per sample")
    _flag(parser, "ddpm_num_steps", type=int)
    _flag(parser, "ddpm_beta_schedule", choices=BETA_SCHEDULES, help="'course' = the DeepLearning.AI 500-step schedule")
    _flag(parser, "ddpm_num_inference_steps", type=int, help="steps for the preview samples (default: all)")
    _flag(parser, "prediction_type", choices=("epsilon", "sample", "v_prediction"))
    _flag(parser, "noise_distribution", choices=("gaussian", "uniform"), help="CorruptScheduler noise")
    _flag(parser, "data_range", choices=("-1..1", "0..1"), help="CorruptScheduler data range")
    _flag(parser, "loss_type", choices=LOSS_TYPES)
    _flag(parser, "guidance_scale", type=float,
          help="classifier-free guidance of the sample grids (conditional ContextUnet trained with --cond_drop_prob)")


def _add_optim_flags(parser):
    for name in ("train_batch_size", "eval_batch_size", "num_epochs", "max_train_steps",
                 "gradient_accumulation_steps", "lr_warmup_steps", "seed"):
        _flag(parser, name, type=int)
    for name in ("learning_rate", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm",
                 "ema_inv_gamma", "ema_power", "ema_max_decay"):
        _flag(parser, name, type=float)
    _flag(parser, "optimizer", choices=("adamw", "adam"))
    _flag(parser, "lr_scheduler", choices=LR_SCHEDULERS, help="'course' = linear decay to 0 per epoch, no warmup")
    _flag(parser, "use_ema", action=argparse.BooleanOptionalAction)
    _flag(parser, "mixed_precision", choices=("no", "fp16", "bf16"))
    _flag(parser, "channels_last", action=argparse.BooleanOptionalAction)
    _flag(parser, "torch_compile", action=argparse.BooleanOptionalAction)


def _add_output_flags(parser):
    _flag(parser, "output_dir", type=str)
    _flag(parser, "overwrite_output_dir", action=argparse.BooleanOptionalAction)
    for name in ("save_images_epochs", "save_model_epochs", "checkpointing_steps", "checkpoints_total_limit",
                 "logging_steps"):
        _flag(parser, name, type=int)
    _flag(parser, "save_gif", action=argparse.BooleanOptionalAction)
    _flag(parser, "resume_from_checkpoint", type=str, help="'latest' or a checkpoint folder")
    _flag(parser, "logger", choices=("tensorboard", "none"))
    _flag(parser, "logging_dir", type=str, help="relative to output_dir")
    _flag(parser, "push_to_hub", action=argparse.BooleanOptionalAction)
    _flag(parser, "hub_model_id", type=str)
    _flag(parser, "hub_token", type=str, help="Hub token (default: HF_TOKEN or the cached login); never saved")
    _flag(parser, "hub_private_repo", action=argparse.BooleanOptionalAction)


def build_parser() -> argparse.ArgumentParser:
    """The `train` command line. Every flag defaults to "not given" so presets can fill the gaps."""
    parser = argparse.ArgumentParser(
        prog="hf-sprites train",
        description="Train a diffusion model and save a diffusers pipeline folder.",
        argument_default=argparse.SUPPRESS,
    )
    _flag(parser, "preset", type=str, help=f"start from a preset: {', '.join(available_presets())}")
    _add_data_flags(parser)
    _add_model_flags(parser)
    _add_optim_flags(parser)
    _add_output_flags(parser)
    return parser


def resolve_config(given: dict) -> TrainConfig:
    """Merge dataclass defaults, the chosen preset and the explicitly given values."""
    preset = given.get("preset")
    if preset is None and given.get("dataset_name") is None and given.get("train_data_dir") is None:
        preset = "default"
    values = load_preset(preset) if preset else {}
    values.update(given)
    values["preset"] = preset
    if values.get("ddpm_beta_schedule") == "course" and "ddpm_num_steps" not in values:
        values["ddpm_num_steps"] = COURSE_NUM_STEPS
    conditional_unet = values.get("model") == "context_unet" and (values.get("conditional") or values.get("class_column"))
    # a preset's context dropout and guidance are moot once flags turn the context off
    if "cond_drop_prob" not in given and not conditional_unet:
        values["cond_drop_prob"] = 0.0
    if "guidance_scale" not in given and not values.get("cond_drop_prob"):
        values["guidance_scale"] = 1.0
    return TrainConfig(**values)


def parse_train_args(argv: Optional[list[str]] = None) -> TrainConfig:
    """Parse `argv` (a list of strings; `None` means no flags, never `sys.argv`) into a `TrainConfig`."""
    namespace = build_parser().parse_args([] if argv is None else list(argv))
    return resolve_config(vars(namespace))
