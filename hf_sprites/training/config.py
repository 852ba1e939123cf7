"""Training configuration: the `TrainConfig` dataclass is the command line, presets seed it, and every rule on it.

Each field is one flag. Its type says what kind of flag: `Literal[...]` gives the choices, `bool` a
`--name/--no-name` switch, `tuple[int, ...]` one or more values, `tuple[int, int, int]` exactly three, and
`Optional[T]` a `T` that may stay unset; `field(metadata=...)` holds the help text (and a `metavar`). Adding a
flag is adding a field.

Values are resolved in four layers, later ones winning: the dataclass defaults (diffusers'
`train_unconditional.py` defaults where the flag exists there), a preset file from `presets/*.yaml`,
the user's own settings file (`--config FILE.yaml`, the same keys as a preset) and the flags given on the
command line. Without a dataset flag and without `--preset`, the `default` preset (the embedded
scikit-learn digits job) is used. A field may have alias flags (`--report_to` for `--logger`); a settings
file may use the alias as its key. Settings files are checked like flags: each key must be a field (or an alias),
each value of the field's type, so a typo in a file fails as clearly as one on the command line.

This is the longest module of the package on purpose: the dataclass is the whole command line (one field, with its
help, per flag), and every rule on the settings is here, in one place.

Every rule about which settings go together lives at the bottom of this file: `check_config` (the settings
alone) and `check_data` (the settings against the loaded data). A preset value that the given flags make moot
(e.g. the context dropout of `--preset sprites_context --no-conditional`) is dropped, with a log line, by
`drop_moot_preset_values`; a value given on the command line that breaks a rule raises `TrainConfigError`.

Example:
    >>> from hf_sprites.training.config import parse_train_args
    >>> cfg = parse_train_args(["--preset", "sprites", "--num_epochs", "2"])
    >>> (cfg.model, cfg.resolution, cfg.num_epochs)
    ('context_unet', 16, 2)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml


logger = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).parent / "presets"
# accelerate's trackers (`accelerate.utils.LoggerType`) plus "all" (every installed one) and "none"
Tracker = Literal["tensorboard", "wandb", "trackio", "comet_ml", "mlflow", "aim", "clearml", "dvclive", "swanlab", "all",
                  "none"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]  # torch.compile
# the tutorials' names for two diffusers beta schedules
BETA_SCHEDULE_ALIASES = {"cosine": "squaredcos_cap_v2", "quadratic": "scaled_linear"}
SECRET_FIELDS = ("hub_token",)
COURSE_NUM_STEPS = 500


class TrainConfigError(ValueError):
    """A training setting or input that cannot work. The message says what to change."""


def available_presets() -> list[str]:
    """Names of the preset files shipped in `hf_sprites/training/presets/`."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def flag(default, help: str, **metadata):
    """A `TrainConfig` field: its default and its `--help` text (plus argparse extras such as `metavar`)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class TrainConfig:
    """Every setting of a training run (flag names follow diffusers' `train_unconditional.py`)."""

    preset: Optional[str] = flag(None, f"start from a preset: {', '.join(available_presets())}")
    # issue 9
    config: Optional[str] = flag(None, "your own settings file: YAML whose keys are these flags' names (over --preset)",
                                 metavar="FILE.yaml")
    # data
    dataset_name: Optional[str] = flag(None, "Hub dataset id (default: the embedded scikit-learn digits)")
    dataset_config_name: Optional[str] = flag(None, "the dataset's configuration name")
    train_data_dir: Optional[str] = flag(None, "local data: a dataset or image folder, the course's .npy pair, IDX")
    split: str = flag("train", "the split to train on")
    image_column: Optional[str] = flag(None, "image column (default: the first image column)")
    class_column: Optional[str] = flag(None, "label column to train on (implies --conditional)")
    cache_dir: Optional[str] = flag(None, "datasets cache folder")
    max_train_samples: Optional[int] = flag(None, "use only the first N training images")
    resolution: int = flag(64, "image size in pixels")
    in_channels: Optional[Literal[1, 3]] = flag(None, "image channels (default: from the preset or the data)")
    center_crop: bool = flag(False, "crop the centre square instead of resizing the whole image")
    random_flip: bool = flag(False, "flip images horizontally at random")
    balance_classes: bool = flag(
        False, "draw each epoch's images so that every class comes up equally often (with replacement), for labels "
        "where a class is rare; default: every image once per epoch")
    interpolation: Literal["nearest", "bilinear"] = flag("bilinear", "resize filter")
    background: tuple[int, int, int] = flag((255, 255, 255), "fill colour under transparency", metavar=("R", "G", "B"))
    cache_on_device: Literal["auto", "always", "never"] = flag(
        "auto", "keep the preprocessed dataset as one tensor on the training device (auto: when it is small)")
    dataloader_num_workers: int = flag(0, "DataLoader workers for data too large for the device")
    # model and diffusion
    model: Literal["context_unet", "basic_unet", "unet2d"] = flag("unet2d", "model kind")
    # issue 9
    model_config_name_or_path: Optional[str] = flag(
        None, "a UNet2DModel config: a config JSON, a folder holding config.json or a Hub model id (replaces the "
        "block flags)")
    n_feat: int = flag(64, "ContextUnet width")
    n_cfeat: Optional[int] = flag(None, "ContextUnet context width (default: number of classes, or 5)")
    block_norm: Literal["batch", "group"] = flag(
        "batch", "ContextUnet's norm in its residual blocks: the course's BatchNorm or GroupNorm (8 groups, no statistics)")
    block_out_channels: tuple[int, ...] = flag((128, 128, 256, 256, 512, 512), "UNet2DModel channels per block")
    down_block_types: tuple[str, ...] = flag(("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                                             "UNet2DModel down blocks")
    up_block_types: tuple[str, ...] = flag(("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4, "UNet2DModel up blocks")
    layers_per_block: int = flag(2, "UNet2DModel layers per block")
    conditional: Optional[bool] = flag(None, "train on the dataset's labels (default: when --class_column is given)")
    cond_drop_prob: float = flag(0.0, "probability of dropping the labels/context per sample (the course: 0.1)")
    ddpm_num_steps: int = flag(1000, "diffusion steps (the course schedule: 500)")
    ddpm_beta_schedule: Literal[
        "linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "course", "cosine", "quadratic"
    ] = flag("linear", "'course' = the DeepLearning.AI 500-step schedule; cosine and quadratic are aliases")
    ddpm_num_inference_steps: Optional[int] = flag(None, "steps for the preview samples (default: all)")
    preview_sampler: Literal["ddpm", "ddim", "dpm"] = flag(
        "ddpm", "sampler of the preview grids: the trained scheduler, or DDIM / DPM-Solver built from its config")
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = flag("epsilon", "what the model predicts")
    noise_distribution: Literal["gaussian", "uniform"] = flag("gaussian", "CorruptScheduler noise")
    data_range: Literal["-1..1", "0..1"] = flag("-1..1", "CorruptScheduler data range")
    loss_type: Literal["l2", "l1", "huber"] = flag("l2", "loss between prediction and target")
    snr_gamma: Optional[float] = flag(
        None, "min-SNR-gamma loss weighting (Hang et al. 2023; 5 is usual); default: every timestep weighs the same")
    guidance_scale: float = flag(
        1.0, "classifier-free guidance of the sample grids (conditional ContextUnet trained with --cond_drop_prob)")
    # optimisation
    train_batch_size: int = flag(16, "images per batch and process")
    eval_batch_size: int = flag(16, "images in a preview grid")
    num_epochs: int = flag(100, "passes over the data")
    max_train_steps: Optional[int] = flag(None, "optimizer steps (overrides --num_epochs)")
    time_budget_minutes: Optional[float] = flag(
        None, "train for this much wall time (set-up included, the final save after): the run measures its step "
        "time, then sizes the LR schedule, EMA warm-up and previews to the steps that fit")
    gradient_accumulation_steps: int = flag(1, "batches per optimizer step")
    optimizer: Literal["adamw", "adam"] = flag("adamw", "Adam (the course) or AdamW (diffusers' examples)")
    learning_rate: float = flag(1e-4, "peak learning rate")
    lr_scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "course"
    ] = flag("cosine", "'course' = linear decay to 0 per epoch, no warmup")
    lr_warmup_steps: int = flag(500, "optimizer steps of LR warmup")
    lr_warmup_ratio: Optional[float] = flag(
        None, "LR warmup as a share of the run's optimizer steps (replaces --lr_warmup_steps; fits budgeted runs)")
    adam_beta1: float = flag(0.95, "Adam beta1")
    adam_beta2: float = flag(0.999, "Adam beta2")
    adam_weight_decay: float = flag(1e-6, "Adam weight decay")
    adam_epsilon: float = flag(1e-8, "Adam epsilon")
    max_grad_norm: Optional[float] = flag(1.0, "gradient clipping norm (a preset may turn it off)")
    use_ema: bool = flag(True, "keep an EMA of the weights and save it")
    ema_inv_gamma: float = flag(1.0, "EMA warmup inv_gamma")
    ema_power: float = flag(0.75, "EMA warmup power")
    ema_max_decay: float = flag(0.9999, "EMA decay cap")
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = flag(
        "no", "accelerate mixed precision; 'auto': bf16 where the machine computes it natively, else none")
    channels_last: bool = flag(False, "channels-last memory format")
    torch_compile: bool = flag(False, "compile the model with torch.compile")
    torch_compile_mode: Optional[CompileMode] = flag(
        None, "torch.compile mode with --torch_compile ('reduce-overhead': CUDA graphs, for a small model whose GPU "
        "steps are mostly kernel launches; default: torch's)")
    cpu_threads: Optional[int] = flag(
        None, "intra-op CPU threads per process (default on CPU: this machine's usable cores shared among its "
        "processes; accelerate launch's OMP_NUM_THREADS=1 default is not taken as a choice)")
    seed: Optional[int] = flag(None, "seed of the run (data order, noise, previews)")
    # outputs
    output_dir: str = flag("outputs/ddpm-model", "the pipeline folder to write")
    overwrite_output_dir: bool = flag(False, "train into a non-empty --output_dir")
    save_images_epochs: int = flag(10, "preview grids every N epochs")
    save_model_epochs: int = flag(10, "save the pipeline every N epochs")
    save_gif: bool = flag(True, "write denoising.gif at the end")
    checkpointing_steps: Optional[int] = flag(500, "a resumable checkpoint every N optimizer steps")
    checkpoints_total_limit: Optional[int] = flag(None, "keep only the newest N checkpoints")
    resume_from_checkpoint: Optional[str] = flag(None, "'latest' or a checkpoint folder")
    logger: tuple[Tracker, ...] = flag(  # issue 9: one or more of accelerate's trackers
        ("tensorboard",), f"experiment trackers: {', '.join(typing.get_args(Tracker))} (all: every installed one)",
        aliases=("--report_to",), metavar="TRACKER")
    logging_dir: str = flag("logs", "relative to output_dir")
    logging_steps: int = flag(10, "log the loss every N optimizer steps")
    # reliability
    max_bad_steps: int = flag(0, "optimizer steps with NaN/inf gradients to skip (each logged, one host sync per step) "
                                 "before the run stops; 0: stop at the first non-finite loss")
    # sharing
    push_to_hub: bool = flag(False, "upload the folder to the Hub at the end")
    hub_model_id: Optional[str] = flag(None, "Hub repo id (default: the output folder's name)")
    hub_token: Optional[str] = field(
        default=None, repr=False, metadata={"help": "Hub token (default: HF_TOKEN or the cached login); never saved"})
    hub_private_repo: bool = flag(False, "create the Hub repo private")
    # issue 9
    license: str = flag("apache-2.0", "license of the model card (a Hub license id: apache-2.0, mit, cc-by-4.0, ...)")

    def __post_init__(self):
        self.ddpm_beta_schedule = BETA_SCHEDULE_ALIASES.get(self.ddpm_beta_schedule, self.ddpm_beta_schedule)
        for name in ("background", "block_out_channels", "down_block_types", "up_block_types"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.conditional is None:
            self.conditional = self.class_column is not None
        self.logger = (self.logger,) if isinstance(self.logger, str) else tuple(self.logger)  # one tracker as a string

    @property
    def uses_embedded_default(self) -> bool:
        return self.dataset_name is None and self.train_data_dir is None

    def public_dict(self) -> dict:
        """The settings without secrets: what may be logged, saved or shown in a model card."""
        values = dataclasses.asdict(self)
        for name in SECRET_FIELDS:
            values.pop(name, None)
        return values


def label_mode(cfg) -> Optional[str]:
    """How labels reach the model: None (not at all), "context" (ContextUnet) or "class_labels" (UNet2DModel)."""
    if not cfg.conditional:
        return None
    return "context" if cfg.model == "context_unet" else "class_labels"


# --- the command line: one flag per field ---------------------------------------------------------------------------


def flag_kwargs(kind) -> dict:
    """argparse keywords for a field of type `kind`.

    >>> flag_kwargs(Optional[Literal[1, 3]])
    {'type': <class 'int'>, 'choices': (1, 3)}
    >>> flag_kwargs(tuple[str, ...])
    {'type': <class 'str'>, 'nargs': '+'}
    >>> flag_kwargs(tuple[Literal["a", "b"], ...])
    {'choices': ('a', 'b'), 'nargs': '+'}
    """
    kind = unwrap_optional(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return _element_kwargs(kind)
    if origin is tuple:
        return {**_element_kwargs(args[0]), "nargs": "+" if args[-1] is Ellipsis else len(args)}
    if kind in (int, float, str):
        return {"type": kind}
    raise TypeError(f"no command-line flag for a field of type {kind}; use bool, int, float, str, Literal or tuple")


def _element_kwargs(kind) -> dict:
    """argparse `type`/`choices` of one value of type `kind` (a plain type or a `Literal`)."""
    if typing.get_origin(kind) is not Literal:
        return {"type": kind}
    args = typing.get_args(kind)
    return {"choices": args} if all(isinstance(a, str) for a in args) else {"type": type(args[0]), "choices": args}


def build_parser(config_class: type = TrainConfig) -> argparse.ArgumentParser:
    """The `train` command line: one flag per `config_class` field, each defaulting to "not given"."""
    parser = argparse.ArgumentParser(
        prog="hf-sprites train",
        description="Train a diffusion model and save a diffusers pipeline folder.",
        argument_default=argparse.SUPPRESS,
    )
    kinds = typing.get_type_hints(config_class)
    for spec in dataclasses.fields(config_class):
        extras = {key: value for key, value in spec.metadata.items() if key != "aliases"}
        parser.add_argument(f"--{spec.name}", *spec.metadata.get("aliases", ()), dest=spec.name,
                            **flag_kwargs(kinds[spec.name]), **extras)
    return parser


# --- settings files: the presets and `--config FILE.yaml`, checked like flags -------------------------------------------


def unwrap_optional(kind):
    """`Optional[T]` -> `T`; anything else as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return kind


def read_settings(path: Path, what: str, config_class: type) -> dict:
    """A settings file's mapping of field names to values, each checked against its `config_class` field.

    `what` names the file in errors ("Preset 'sprites'", "--config my.yaml").
    """
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} is not valid YAML ({' '.join(str(err).split())}); fix the file") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a YAML mapping of flag names to values (e.g. `learning_rate: 1.0e-3`), not "
                         f"a {type(values).__name__}")
    names = field_names(config_class)
    unknown = sorted(str(key) for key in values if key not in names)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; every key must be a TrainConfig field (a flag name "
                         "without --)")
    kinds = typing.get_type_hints(config_class)
    return {names[key]: checked_value(names[key], kinds[names[key]], value, what) for key, value in values.items()}


def field_names(config_class: type) -> dict:
    """Every name a settings file may use (field names and their alias flags without dashes) -> the field's name."""
    names = {}
    for spec in dataclasses.fields(config_class):
        names.update({alias.lstrip("-"): spec.name for alias in spec.metadata.get("aliases", ())})
        names[spec.name] = spec.name
    return names


def checked_value(name: str, kind, value, what: str = "the settings"):
    """`value` of field `name` as its type `kind` asks (a float field takes whole numbers too), or a `ValueError`."""
    if value is None and typing.get_origin(kind) in (typing.Union, types.UnionType):
        return None
    kind = unwrap_optional(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return _checked_tuple(name, args, value, what)
    expected = tuple({type(arg) for arg in args}) if origin is Literal else _PLAIN_TYPES.get(kind, (object,))
    wrong_type = (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected)
    if wrong_type or (origin is Literal and value not in args):
        raise ValueError(f"{what}: {name} must be {_kind_name(kind)}, got {value!r}")
    return float(value) if kind is float else value


_PLAIN_TYPES = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _checked_tuple(name: str, args: tuple, value, what: str) -> tuple:
    any_length = args[-1] is Ellipsis
    items = [value] if any_length and not isinstance(value, (list, tuple)) else value
    if not isinstance(items, (list, tuple)) or not items or (not any_length and len(items) != len(args)):
        count = "one or more" if any_length else len(args)
        raise ValueError(f"{what}: {name} must be a list of {count} values, got {value!r}")
    return tuple(checked_value(name, args[0], item, what) for item in items)


def _kind_name(kind) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


# --- resolution: defaults < preset < given flags --------------------------------------------------------------------


def load_preset(name: str, config_class: type = TrainConfig) -> dict:
    """Read one preset file and check its keys and values against `config_class`."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise TrainConfigError(f"Unknown preset {name!r}. Choose one of: {', '.join(available_presets())}.")
    return _read(path, f"Preset {name!r}", config_class)


def load_config_file(path: str, config_class: type = TrainConfig) -> dict:
    """Read the user's `--config FILE.yaml` (the same keys as a preset; it may name a `preset` to start from)."""
    file = Path(path).expanduser()
    if not file.is_file():
        _fail(f"--config {path} is not a file; pass a YAML file of settings such as {PRESET_DIR / 'sprites.yaml'}")
    values = _read(file, f"--config {path}", config_class)
    if "config" in values:
        _fail(f"--config {path} names another settings file (config: ...); settings files do not nest, merge them")
    return values


def _read(path: Path, what: str, config_class: type) -> dict:
    try:
        return read_settings(path, what, config_class)
    except ValueError as err:
        raise TrainConfigError(str(err)) from None


def resolve_config(given: dict, config_class: type = TrainConfig) -> TrainConfig:
    """Merge dataclass defaults, the chosen preset, the `--config` file and the explicitly `given` values."""
    from_file = load_config_file(given["config"], config_class) if given.get("config") else {}
    chosen = {**from_file, **given}
    preset = chosen.get("preset")
    if preset is None and chosen.get("dataset_name") is None and chosen.get("train_data_dir") is None:
        preset = "default"
    values = {**(load_preset(preset, config_class) if preset else {}), **chosen, "preset": preset}
    if values.get("ddpm_beta_schedule") == "course" and "ddpm_num_steps" not in values:
        values["ddpm_num_steps"] = COURSE_NUM_STEPS
    cfg = config_class(**values)
    drop_moot_preset_values(cfg, chosen)
    return cfg


def parse_train_args(argv: Optional[list[str]] = None, config_class: type = TrainConfig) -> TrainConfig:
    """Parse `argv` (a list of strings; `None` means no flags, never `sys.argv`) into a `config_class`."""
    namespace = build_parser(config_class).parse_args([] if argv is None else list(argv))
    return resolve_config(vars(namespace), config_class)


# --- the rules -----------------------------------------------------------------------------------------------------


def _fail(message: str) -> None:
    raise TrainConfigError(message)


@dataclass(frozen=True)
class Needs:
    """A setting that only means something when `holds(cfg)`; at its `neutral` value it needs nothing."""

    name: str
    neutral: object
    holds: typing.Callable
    requires: str  # what must hold, in words
    fix: str


DEPENDENT_SETTINGS = (  # in order: dropping one may make the next moot
    Needs("class_column", None, lambda cfg: cfg.conditional, "training on labels",
          "drop --no-conditional or --class_column"),
    Needs("balance_classes", False, lambda cfg: cfg.conditional, "training on labels (it draws by class)",
          "add --class_column NAME (or --conditional), or drop --balance_classes"),
    Needs("cond_drop_prob", 0.0, lambda cfg: cfg.conditional and cfg.model == "context_unet",
          "a conditional ContextUnet (it drops the context for classifier-free guidance)",
          "use --model context_unet with labels (--class_column / --conditional), or set it to 0"),
    Needs("block_norm", "batch", lambda cfg: cfg.model == "context_unet", "--model context_unet (it sets that model's norm)",
          "use --model context_unet or drop --block_norm"),
    Needs("max_train_steps", None, lambda cfg: cfg.time_budget_minutes is None,
          "a run without --time_budget_minutes (the budget decides the number of steps)",
          "give either --max_train_steps or --time_budget_minutes"),
    Needs("time_budget_minutes", None, lambda cfg: cfg.max_train_steps is None,
          "a run without --max_train_steps (the budget decides the number of steps)",
          "give either --max_train_steps or --time_budget_minutes"),
    Needs("torch_compile_mode", None, lambda cfg: cfg.torch_compile, "--torch_compile (it chooses how to compile)",
          "add --torch_compile or drop --torch_compile_mode"),
    Needs("guidance_scale", 1.0, lambda cfg: cfg.cond_drop_prob > 0,
          "a model trained with context dropout (it guides against the null context)",
          "add --cond_drop_prob 0.1 (with labels and --model context_unet) or use --guidance_scale 1"),
)


def _unmet(cfg) -> list[Needs]:
    return [rule for rule in DEPENDENT_SETTINGS if getattr(cfg, rule.name) != rule.neutral and not rule.holds(cfg)]


def drop_moot_preset_values(cfg, given: dict) -> None:
    """Reset each preset setting whose requirement the given flags rule out, with a log line saying so.

    Values given on the command line are left as they are, so that `check_config` reports them.
    """
    for rule in DEPENDENT_SETTINGS:
        if rule.name not in given and rule in _unmet(cfg):
            logger.warning("Preset %r sets %s=%r, which needs %s; the given flags rule that out, so %s=%r is used.",
                           cfg.preset, rule.name, getattr(cfg, rule.name), rule.requires, rule.name, rule.neutral)
            setattr(cfg, rule.name, rule.neutral)


def check_choices(cfg) -> None:
    """Values from presets or code must be among a `Literal` field's choices, like flag values."""
    kinds = typing.get_type_hints(type(cfg))
    for spec in dataclasses.fields(cfg):
        choices, value = flag_kwargs(kinds[spec.name]).get("choices"), getattr(cfg, spec.name)
        for item in value if isinstance(value, tuple) else (value,):
            if choices and item is not None and item not in choices:
                _fail(f"{spec.name}={item!r} is not one of {', '.join(map(str, choices))}; pick one of them")


def check_numbers(cfg) -> None:
    for name in ("train_batch_size", "eval_batch_size", "gradient_accumulation_steps", "ddpm_num_steps", "num_epochs",
                 "logging_steps", "save_images_epochs", "save_model_epochs"):
        if getattr(cfg, name) < 1:
            _fail(f"--{name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("max_train_steps", "checkpointing_steps", "checkpoints_total_limit", "max_train_samples", "cpu_threads"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            _fail(f"--{name} must be at least 1 when given, got {value}")
    if cfg.learning_rate <= 0:
        _fail(f"--learning_rate must be positive, got {cfg.learning_rate}")
    for name in ("time_budget_minutes", "snr_gamma"):
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            _fail(f"--{name} must be positive when given, got {value}")
    if cfg.lr_warmup_ratio is not None and not 0.0 <= cfg.lr_warmup_ratio < 1.0:
        _fail(f"--lr_warmup_ratio is a share of the run's steps in [0, 1), got {cfg.lr_warmup_ratio}")
    if not 0.0 <= cfg.cond_drop_prob < 1.0:
        _fail(f"--cond_drop_prob must be in [0, 1) (the course uses 0.1), got {cfg.cond_drop_prob}")


def check_reliability(cfg) -> None:
    if cfg.max_bad_steps < 0:
        _fail(f"--max_bad_steps must be 0 (stop at the first bad step) or more, got {cfg.max_bad_steps}")


def check_model_shape(cfg) -> None:
    """The image size must fit the model's down-sampling, and UNet2DModel's blocks must line up."""
    size, blocks = cfg.resolution, len(cfg.block_out_channels)
    if size < 4:
        _fail(f"--resolution {size} is too small; use at least 4 pixels")
    if cfg.model in ("context_unet", "basic_unet") and size % 4:
        name = "ContextUnet" if cfg.model == "context_unet" else "BasicUNet"
        _fail(f"{name} cannot take {size}px images (it needs a multiple of 4); use --resolution {size - size % 4 or 4}"
              f" or {size + 4 - size % 4}")
    if cfg.model != "unet2d":
        return
    if cfg.model_config_name_or_path:  # the JSON's own blocks; the UNet2DModel constructor checks the rest
        from .builders import block_count  # builders.py builds on this module

        blocks = block_count(cfg.model_config_name_or_path)
    elif len(cfg.down_block_types) != blocks or len(cfg.up_block_types) != blocks:
        _fail(f"--block_out_channels has {blocks} entries but --down_block_types has {len(cfg.down_block_types)} and "
              f"--up_block_types {len(cfg.up_block_types)}; give one block type per channel entry")
    odd = [c for c in cfg.block_out_channels if c % 32]
    if odd and not cfg.model_config_name_or_path:
        _fail(f"UNet2DModel's GroupNorm uses 32 groups, so every --block_out_channels entry must be a multiple of 32 "
              f"(got {odd}); e.g. --block_out_channels 32 64 64")
    factor = 2 ** (blocks - 1)
    if size % factor:
        _fail(f"UNet2DModel with {blocks} blocks halves the image {blocks - 1} times, so --resolution must be a "
              f"multiple of {factor} (got {size}); change --resolution or use fewer --block_out_channels")


def check_model_options(cfg) -> None:
    """Combinations of model, scheduler and conditioning that cannot train."""
    if cfg.model == "basic_unet" and cfg.conditional:
        _fail("BasicUNet ignores labels, so it cannot train on them; drop --class_column/--conditional or use "
              "--model context_unet")
    for rule in _unmet(cfg):
        value = getattr(cfg, rule.name)
        _fail(f"--{rule.name}{'' if isinstance(value, bool) else f' {value}'} needs {rule.requires}; {rule.fix}")
    if cfg.ddpm_beta_schedule == "course" and cfg.model != "basic_unet" and cfg.prediction_type != "epsilon":
        _fail(f"the course schedule (SpriteScheduler) predicts noise; use --prediction_type epsilon or another "
              f"--ddpm_beta_schedule (got --prediction_type {cfg.prediction_type})")
    if cfg.snr_gamma is not None and cfg.model == "basic_unet":
        _fail("--snr_gamma weighs the loss by a noise schedule's signal-to-noise ratio, which the corrupt process of "
              "BasicUNet does not have; drop --snr_gamma or use --model context_unet / unet2d")
    if cfg.model == "context_unet" and cfg.prediction_type != "epsilon":
        _fail("ContextUnet predicts noise (the course's model); use --prediction_type epsilon or --model unet2d")


def check_config(cfg) -> None:
    """Every rule on the settings alone; raises `TrainConfigError` naming the problem and the fix.

    >>> try:
    ...     check_config(parse_train_args(["--model", "context_unet", "--resolution", "18"]))
    ... except TrainConfigError as err:
    ...     print(str(err).split(";")[0])
    ContextUnet cannot take 18px images (it needs a multiple of 4)
    """
    check_choices(cfg)
    check_numbers(cfg)
    check_model_config(cfg)
    check_reliability(cfg)
    check_model_shape(cfg)
    check_model_options(cfg)
    check_sharing(cfg)


def check_data(cfg, source, num_processes: int = 1) -> None:
    """Every rule on the settings against the loaded `ImageSource` (the data layer has checked the data itself)."""
    if cfg.conditional and not source.num_classes:
        hint = f"--class_column {cfg.class_column} matched no labels" if cfg.class_column else "the dataset has no labels"
        _fail(f"this run trains on labels (preset {cfg.preset!r} or --conditional) but {hint} in {source.source}; "
              "pass --class_column NAME for a label column, or --no-conditional to train without labels")
    if cfg.conditional and source.label_kind == "multi_hot" and cfg.model != "context_unet":
        _fail("multi-hot / one-hot label vectors need a model with a context input; use --model context_unet")
    if cfg.conditional and cfg.model == "context_unet" and cfg.n_cfeat and cfg.n_cfeat != source.num_classes:
        _fail(f"--n_cfeat {cfg.n_cfeat} does not match the {source.num_classes} classes of {source.source}; "
              "drop --n_cfeat (it defaults to the number of classes)")
    if cfg.balance_classes:
        from hf_sprites.data.batching import balanced_weights  # raises DataError for labels without one class each

        balanced_weights(source.labels)
    usable = min(len(source), cfg.max_train_samples or len(source)) // num_processes
    if usable < cfg.train_batch_size:
        _fail(f"{usable} images per process is less than one batch (--train_batch_size {cfg.train_batch_size}); lower "
              "--train_batch_size or use more data")


# --- issue 9: a UNet config file, trackers, the card's license -----------------------------------------------------


def check_model_config(cfg) -> None:
    """`--model_config_name_or_path` must be a UNet2DModel config that fits the run's size, channels and labels."""
    if not cfg.model_config_name_or_path:
        return
    if cfg.model != "unet2d":
        _fail(f"--model_config_name_or_path configures a UNet2DModel; add --model unet2d (got --model {cfg.model})")
    from .builders import load_model_config  # builders.py builds on this module

    try:
        values, what = load_model_config(cfg.model_config_name_or_path), "--model_config_name_or_path"
    except ValueError as err:
        raise TrainConfigError(str(err)) from None
    size = values.get("sample_size")
    if size is not None and size not in (cfg.resolution, [cfg.resolution] * 2):
        _fail(f"{what} sets sample_size {size} but --resolution is {cfg.resolution}; make them agree")
    if cfg.in_channels and values.get("in_channels") not in (None, cfg.in_channels):
        _fail(f"{what} sets in_channels {values['in_channels']} but --in_channels is {cfg.in_channels}; make them agree")
    if values.get("num_class_embeds") and not cfg.conditional:
        _fail(f"{what} sets num_class_embeds but this run trains without labels; add --class_column NAME (or "
              "--conditional), or remove num_class_embeds from the file")


def check_sharing(cfg) -> None:
    """The trackers are installed (accelerate would skip a missing one) and the card's license is a Hub license id."""
    from hf_sprites.hub.card_data import check_license

    from .output import tracker_problem  # output.py builds on this module

    problem = tracker_problem(cfg.logger)
    if problem:
        _fail(problem)
    try:
        check_license(cfg.license)
    except ValueError as err:
        raise TrainConfigError(f"--{err}") from None
