"""Sampling-side variants on kept models: does a change in how a trained model is sampled buy FID?

Each model folder (kept by `time_to_quality.py` / `ablation.py` with `--save_models_dir`, or any `hf-sprites train`
output) is scored as it was saved and under each variant, with the same evaluation as those benchmarks (500 DDIM-25
samples, domain FID/KID against the training split, class accuracy, the same evaluation seeds): only the variant
differs, so the changes are paired, model by model, and no training seed's luck enters them.

    spacing=S           DDIM timestep spacing S ("leading", "linspace") instead of the saved scheduler's (the
                        course schedule's "trailing": t = 499, 479, ... 19)
    guidance_rescale=R  the guided noise estimate rescaled toward the conditional one's standard deviation by a
                        factor R in [0, 1] (diffusers' `rescale_noise_cfg`, Lin et al. 2023, section 3.4)
    precise_bn=N        the unet's BatchNorm statistics recomputed as a plain mean over N training batches, noised
                        as in training (torch's `update_bn`), instead of the run's moving average of its last batches
    guidance=G          classifier-free guidance G instead of --guidance_scale (conditional models: --conditional)

Output: the last line is JSON: `models[path]` with the scores as saved and per variant, and `table`: per variant the
mean FID / class accuracy, and its FID change against the model as saved (mean, std, values, how many models it
improved).

Example:
    python benchmarks/sampler_variants.py runs/best-10min-seed0 runs/best-10min-seed1 --conditional \
        --guidance_scale 4.5 --variants spacing=leading guidance_rescale=0.7 precise_bn=200
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

import torch
from common import base_parser, emit
from diffusers.guiders.guider_utils import rescale_noise_cfg
from time_to_quality import add_shared_arguments, prepare, score, setup_record
from torch.optim.swa_utils import update_bn

from hf_sprites.data import load_images, make_transform, to_tensors
from hf_sprites.hub import load_pipeline
from hf_sprites.pipelines import SpritePipeline
from hf_sprites.training.config import label_mode
from hf_sprites.training.step import DiffusionLoss

KINDS = {"spacing": str, "guidance_rescale": float, "precise_bn": int, "guidance": float}
SPACINGS = ("leading", "linspace", "trailing")


class RescaledGuidance(SpritePipeline):
    """`SpritePipeline` whose guided noise estimate is rescaled by `guidance_rescale` (a class attribute, so the copy
    that `evaluate` makes of the pipeline keeps it: `rescaled_guidance(R)` makes the class)."""

    guidance_rescale = 0.0

    def guide(self, conditional, unconditional, guidance_scale: float) -> torch.Tensor:
        guided = super().guide(conditional, unconditional, guidance_scale)
        return rescale_noise_cfg(guided, conditional, guidance_rescale=self.guidance_rescale)


class NoisedTraining(torch.nn.Module):
    """The unet called on a training batch noised (and its labels dropped) as the training step does, so that
    `update_bn` shows BatchNorm the inputs it was trained on."""

    def __init__(self, unet, loss_fn: DiffusionLoss):
        super().__init__()
        self.unet, self.loss_fn = unet, loss_fn

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss_fn(self.unet, batch["images"], batch["labels"])


def rescaled_guidance(factor: float) -> type:
    return type(f"RescaledGuidance{factor:g}", (RescaledGuidance,), {"guidance_rescale": factor})


def parse_variant(text: str) -> tuple[str, object]:
    """`kind=value` -> (kind, value), or one clear error naming what is accepted."""
    kind, _, value = text.partition("=")
    try:
        parsed = KINDS[kind](value)
    except (KeyError, ValueError):
        raise SystemExit(f"error: variant {text!r} is not one of spacing=S, guidance_rescale=R, precise_bn=N, "
                         f"guidance=G (e.g. spacing=leading guidance_rescale=0.7 precise_bn=200 guidance=3)") from None
    allowed = {"spacing": lambda v: v in SPACINGS, "guidance_rescale": lambda v: 0.0 <= v <= 1.0,
               "precise_bn": lambda v: v >= 1, "guidance": lambda v: v >= 1.0}[kind]
    if not allowed(parsed):
        raise SystemExit(f"error: variant {text!r}: spacing is one of {', '.join(SPACINGS)}, guidance_rescale is "
                         f"in [0, 1], precise_bn is a number of batches >= 1, guidance is >= 1 (1: no guidance)")
    return kind, parsed


def training_data(cfg) -> tuple:
    """The training images as the training run saw them (in [-1, 1]) and their labels (None without labels)."""
    return to_tensors(load_images(dataset_name=cfg.dataset_name, train_data_dir=cfg.train_data_dir),
                      make_transform(cfg, cfg.in_channels))


def training_batches(data: tuple, batch_size: int, count: int, seed: int):
    """`count` random batches of `data` (`training_data`), drawn with their own generator."""
    images, labels = data
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        yield {"images": images[index], "labels": labels[index] if labels is not None else None}


def loaded_unet(path: str):
    """The unet of the pipeline folder at `path`, or one error naming the folder and the loader's reason."""
    try:
        return load_pipeline(path).unet
    except Exception as error:  # noqa: BLE001  (any loader failure: one line, before any work)
        raise SystemExit(f"error: {path} is not a pipeline folder this package loads ({' '.join(str(error).split())}); "
                         "pass folders kept with --save_models_dir or written by `hf-sprites train`") from None


def has_batchnorm(model) -> bool:
    return any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules())


def variant_pipeline(path: str, kind: str | None, value, cfg, seed: int, data: tuple | None = None):
    """The kept model at `path`, sampled as saved (`kind` None) or under one variant (`precise_bn` draws its batches
    from `data`; `guidance` leaves the pipeline as saved: the scoring takes the scale)."""
    pipe = load_pipeline(path)  # a fresh copy for every variant
    if kind == "spacing":
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, timestep_spacing=value)
    elif kind == "guidance_rescale":
        pipe = rescaled_guidance(value)(unet=pipe.unet, scheduler=pipe.scheduler)
    elif kind == "precise_bn":
        torch.manual_seed(seed)  # the noise, timesteps and dropped labels of the batches
        loss_fn = DiffusionLoss(pipe.scheduler, label_mode=label_mode(cfg), cond_drop_prob=cfg.cond_drop_prob,
                                data_range=pipe.scheduler.config.get("data_range", "-1..1"))
        update_bn(training_batches(data, cfg.train_batch_size, value, seed), NoisedTraining(pipe.unet, loss_fn))
    pipe.unet.eval()
    return pipe


def table(models: dict, variants: list[str]) -> dict:
    rows = {}
    for variant in variants:
        pairs = [(m["as_saved"]["fid"], m["variants"][variant]["fid"]) for m in models.values()]
        change = [new - old for old, new in pairs]
        row = {"fid": statistics.fmean(new for _, new in pairs), "fid_as_saved": statistics.fmean(old for old, _ in pairs),
               "fid_change": {"mean": statistics.fmean(change), "values": change, "improved": sum(c < 0 for c in change),
                              "std": statistics.stdev(change) if len(change) > 1 else 0.0}}
        if "class_accuracy" in next(iter(models.values()))["as_saved"]:
            row["class_accuracy"] = statistics.fmean(m["variants"][variant]["class_accuracy"] for m in models.values())
            row["class_accuracy_as_saved"] = statistics.fmean(m["as_saved"]["class_accuracy"] for m in models.values())
        rows[variant] = row
    return rows


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/sampler_variants.py MODEL_DIR --conditional "
                         "--guidance_scale 4.5 --variants spacing=leading")
    add_shared_arguments(parser)
    parser.add_argument("models", nargs="+", help="pipeline folders to score (e.g. kept with --save_models_dir)")
    parser.add_argument("--variants", nargs="+", required=True, help="kind=value: spacing=S, guidance_rescale=R, "
                        "precise_bn=N, guidance=G")
    args = parser.parse_args(argv)
    variants = list(dict.fromkeys(args.variants))
    parsed = {text: parse_variant(text) for text in variants}  # every variant checked before any work
    missing = [path for path in args.models if not Path(path).is_dir()]
    if missing:
        raise SystemExit(f"error: not a model folder: {', '.join(missing)}; pass folders kept with --save_models_dir "
                         "or written by `hf-sprites train`")
    unets = {path: loaded_unet(path) for path in args.models}  # every folder loaded once before any work
    if not args.conditional and any(kind == "guidance" for kind, _ in parsed.values()):
        raise SystemExit("error: a guidance=G variant needs --conditional (unconditional models are sampled without "
                         "guidance); add --conditional for a model trained with labels, or leave guidance=G out")
    precise_bn = any(kind == "precise_bn" for kind, _ in parsed.values())
    if precise_bn:
        without = [path for path, unet in unets.items() if not has_batchnorm(unet)]
        if without:
            raise SystemExit(f"error: precise_bn recomputes BatchNorm statistics, and {', '.join(without)} has no "
                             "BatchNorm layer (ContextUnet has them; UNet2DModel and BasicUNet use GroupNorm): "
                             "leave precise_bn out for it")
    if args.quick:
        args.num_samples, args.num_inference_steps = 100, 10
    _, cfg, _, reference, _ = prepare(args)
    data = training_data(cfg) if precise_bn else None  # once, for every model
    args.seeds_run = []
    models = {}
    for path in args.models:
        scores = {}
        for text, (kind, value) in [(None, (None, None)), *parsed.items()]:
            run_args = copy.copy(args)
            if kind == "guidance":
                run_args.guidance_scale = value
            scores[text], _ = score(run_args, variant_pipeline(path, kind, value, cfg, args.seed, data), reference)
        models[path] = {"as_saved": scores.pop(None), "variants": scores}
    result = {"models": models, "variants": variants, "table": table(models, variants), **setup_record(args)}
    emit(result)
    return result


if __name__ == "__main__":
    main()
