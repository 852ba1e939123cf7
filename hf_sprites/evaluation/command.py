"""`hf-sprites evaluate`: command-line front end of `hf_sprites.evaluation.evaluate`.

Example:
    >>> from hf_sprites.evaluation.command import build_parser
    >>> args = build_parser().parse_args(["outputs/sprites", "--train_data_dir", "shared/data/crawl-sprites"])
    >>> args.num_samples, args.sampler
    (500, 'ddpm')
"""

from __future__ import annotations

import argparse
import json

from ..atomic import atomic_write_text
from ..data.formats import DIGITS_DESCRIPTION
from ..hub.card import record_evaluation, require_card
from .accuracy import FID_LABEL_MIXES
from .domain_classifier import ClassifierRecipe
from .evaluate import evaluate

EXAMPLE = """example:
  hf-sprites evaluate outputs/sprites_context --train_data_dir ../shared/data/crawl-sprites \\
      --num_samples 1000 --sampler ddim --num_inference_steps 25 --seed 0 --output_file eval.json

Prints one JSON object (fid, kid_mean, kid_std, class_accuracy for conditional pipelines, settings).
With --update_card the scores also go into the folder's model card (model-index, named by the features).
Domain features need no download: a small classifier is trained on the reference split's labels
and cached under $HF_HOME/hf_sprites (or ~/.cache/hf_sprites)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-sprites evaluate",
        description="Sample a trained pipeline and compute FID/KID against a reference split "
        "(and class-conditional accuracy for conditional pipelines).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipeline", help="pipeline folder (the output_dir of `hf-sprites train`)")
    data = parser.add_argument_group("reference data (default: the embedded 8x8 digits)")
    data.add_argument("--dataset_name", default=None, help="Hub dataset name or a folder load_dataset can read")
    data.add_argument("--train_data_dir", default=None, help="local data folder (imagefolder, course .npy, IDX, ...)")
    data.add_argument("--split", default="train", help="reference split (default: train)")
    data.add_argument("--image_column", default=None)
    data.add_argument("--class_column", default=None)
    data.add_argument("--max_reference", type=int, default=None, help="use at most this many reference images")
    data.add_argument("--interpolation", default="nearest", choices=["nearest", "bilinear"])
    data.add_argument("--background", type=int, nargs=3, default=[255, 255, 255], metavar=("R", "G", "B"))
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--num_samples", type=int, default=500)
    sampling.add_argument("--num_inference_steps", type=int, default=None, help="default: ddpm all, ddim 25, dpm 20")
    sampling.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim", "dpm"])
    sampling.add_argument("--guidance_scale", type=float, default=1.0)
    sampling.add_argument("--guidance_interval", type=float, nargs=2, default=[0.0, 1.0], metavar=("START", "STOP"),
                          help="guide only the steps between these fractions of the sampling (default 0 1: all)")
    sampling.add_argument("--seed", type=int, default=0)
    sampling.add_argument("--batch_size", type=int, default=250)
    sampling.add_argument("--unconditional", action="store_true", help="sample without labels even if conditional")
    sampling.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    metric = parser.add_argument_group("metrics")
    metric.add_argument("--features", default="domain", choices=["domain", "inception"])
    metric.add_argument("--feature_dim", type=int, default=ClassifierRecipe.feature_dim, help="domain feature size")
    metric.add_argument("--classifier_epochs", type=int, default=ClassifierRecipe.epochs)
    metric.add_argument("--classifier_seed", type=int, default=ClassifierRecipe.seed)
    metric.add_argument("--cache_dir", default=None, help="domain classifier cache root")
    metric.add_argument("--kid_subsets", type=int, default=100)
    metric.add_argument("--kid_subset_size", type=int, default=1000)
    metric.add_argument("--fid_labels", default="reference", choices=FID_LABEL_MIXES,
                        help="conditional FID/KID: ask for classes in the reference's proportions (default) or equally")
    parser.add_argument("--output_file", default=None, help="also write the JSON result here (atomic)")
    parser.add_argument("--update_card", action="store_true",
                        help="add the scores to the folder's model card (model-index) and its training_config.json")
    return parser


def _reference(args) -> str | None:
    if args.dataset_name and args.train_data_dir:
        raise SystemExit("error: pass either --dataset_name or --train_data_dir, not both.")
    return args.train_data_dir or args.dataset_name


def main(argv: list[str] | None = None) -> dict:
    """Parse `argv` (None: the process arguments), evaluate, print and return the result dict."""
    args = build_parser().parse_args(argv)
    if args.update_card:
        require_card(args.pipeline)  # before any sampling
    recipe = ClassifierRecipe(epochs=args.classifier_epochs, feature_dim=args.feature_dim, seed=args.classifier_seed)
    result = evaluate(
        args.pipeline, reference=_reference(args), split=args.split, num_samples=args.num_samples,
        num_inference_steps=args.num_inference_steps, seed=args.seed, batch_size=args.batch_size,
        features=args.features, sampler=args.sampler, guidance_scale=args.guidance_scale,
        guidance_interval=tuple(args.guidance_interval), conditional=False if args.unconditional else None,
        classifier_recipe=recipe, cache_dir=args.cache_dir,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, max_reference=args.max_reference,
        interpolation=args.interpolation, background=tuple(args.background), image_column=args.image_column,
        class_column=args.class_column, device=args.device, fid_labels=args.fid_labels,
    )
    print(json.dumps(result))
    if args.output_file:
        atomic_write_text(args.output_file, json.dumps(result, indent=2))
    if args.update_card:
        record_evaluation(args.pipeline, result, _reference(args) or DIGITS_DESCRIPTION)
    return result
