"""Lever-by-lever ablation of the quality-per-minute recipe at one budget.

Each lever the recipe uses is set back, alone, to the value of the faithful preset (`sprites_context` / `sprites`),
and a lever it leaves out is tried added, alone; each variant trains for the same budget, with the same seeds, data and
evaluation as contender (c) of `time_to_quality.py` (same functions, same JSON layout). The recipe itself is the row
`best`: run it here with `--levers best ...`, or join the curve's own (c) runs at this budget with `--merge` (same
setup, checked). The levers:

    lr_schedule         peak LR 2e-3, 5 % warm-up, cosine decay, gradient clipping at 1.0
                        -> the course's 1e-3 with linear decay, no warm-up, no clipping       (variant without_...)
    min_snr             min-SNR-5 loss weighting -> every timestep weighs the same              (without_...)
    bf16_channels_last  bf16 autocast + channels_last where the CPU computes bf16 natively -> fp32, NCHW (without_...)
    ddim_previews       DDIM-50 preview grids -> the trained scheduler's 500-step DDPM grids    (without_...)
    ema                 the raw weights -> an EMA of the weights (max decay 0.999, power 0.75, sized to the run)
                        (with_ema: the recipe had it until this ablation measured it costing FID at 10 minutes)
    small_batch         batches of 50 -> the course's 100, at the same learning rate: half the optimizer steps
                        in the same minutes, each on twice the images                      (without_small_batch;
                        measured as with_small_batch while the recipe still had batches of 100)
    flips               no augmentation -> each image flipped left-right with probability 1/2, drawn per batch
                        by the seeded, resumable batcher (with_flips)
    smaller_batch       batches of 50 -> 25, at the same learning rate: 1.8 times the optimizer steps in the same
                        minutes on an AVX2 CPU, each on half the images (with_smaller_batch)
    mid_width           ContextUnet n_feat 32 -> 48: 2.2 times the weights (835 k), fewer steps in the same minutes; a
                        test of whether the half-width model is short of capacity rather than of steps (with_mid_width)
    higher_lr           peak LR 2e-3 -> 4e-3, same warm-up, cosine decay and clipping: a model a quarter of the course's
                        size may take larger steps (with_higher_lr)
    cosine_schedule     the course's linear betas (1e-4 to 0.02 over 500 steps) -> the cosine schedule of Nichol &
                        Dhariwal (diffusers' squaredcos_cap_v2) over the same 500 steps, which keeps more of the image
                        at each noise level; scored with the schedule it trained with, whose DDIM starts at step
                        480 of 500 (diffusers' leading spacing; the course schedule's DDIM starts at 499)
                        (with_cosine_schedule)
    narrow              ContextUnet n_feat 32 -> the course's 64: four times the weights (1.48 M against 0.37 M) and
                        2.4 times the time per image in the recipe's runs on an AVX2 CPU, so fewer steps in the same
                        minutes (without_narrow; measured as with_narrow, n_feat 64 -> 32, while the recipe still had
                        the course's width)
    balanced_classes    every image once per epoch -> images drawn so that each class comes up equally often
                        (`--balance_classes`; with replacement, same epoch length): crawl-sprites' rarest class, food,
                        is about 2 % of the data (with_balanced_classes)
    label_dropout       labels dropped for 20 % of the samples -> the course's 10 %: the unconditional branch that
                        classifier-free guidance subtracts trained on half the samples (without_label_dropout;
                        measured as with_label_dropout, 10 % -> 20 %, while the recipe still had the course's 10 %)

Output: the last line is JSON: `results[variant][budget]` as `time_to_quality.py` writes it, every run's record
(`runs`), and `table`: per variant the FID / KID (/ class accuracy) mean and std, the steps, and the FID change
against `best` (positive: the recipe's choice is the better one), of the means and seed by seed (the
same seed starts the recipe and the variant from the same weights and data order).

Examples:
    python benchmarks/ablation.py --conditional --budget 10 --seeds 3
    python benchmarks/ablation.py --conditional --threads 1 --levers min_snr ema --seed_ids 0 1 2 > lane1.json
    python benchmarks/ablation.py --merge lane1.json lane2.json curve.json --budget 10
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
from pathlib import Path

import yaml

from common import base_parser, emit
from time_to_quality import (
    PRESETS, add_shared_arguments, join_runs, keep_model, prepare, save_grid, save_real_grid, score, setup_record,
    summarise, train_package,
)

# each lever: how its variant differs from the recipe ("without": a lever the recipe uses, set back to the faithful
# preset's values; "with": one the recipe leaves out, added) and the values it trains with (a YAML given with --config,
# over the recipe's preset)
LEVERS = {
    "lr_schedule": ("without", {"learning_rate": 1.0e-3, "lr_scheduler": "course", "lr_warmup_ratio": None,
                                "lr_warmup_steps": 0, "max_grad_norm": None}),
    "min_snr": ("without", {"snr_gamma": None}),
    "bf16_channels_last": ("without", {"mixed_precision": "no", "channels_last": False}),
    "ddim_previews": ("without", {"preview_sampler": "ddpm", "ddpm_num_inference_steps": None}),
    "ema": ("with", {"use_ema": True, "ema_max_decay": 0.999, "ema_power": 0.75}),
    "small_batch": ("without", {"train_batch_size": 100}),
    "flips": ("with", {"random_flip": True}),
    "smaller_batch": ("with", {"train_batch_size": 25}),
    "mid_width": ("with", {"n_feat": 48}),
    "higher_lr": ("with", {"learning_rate": 4.0e-3}),
    "cosine_schedule": ("with", {"ddpm_beta_schedule": "cosine"}),
    # the cosine schedule with every timestep weighed the same (min-SNR-5 was chosen on the course's schedule)
    "cosine_plain": ("with", {"ddpm_beta_schedule": "cosine", "snr_gamma": None}),
    # diffusers' sigmoid betas: the course's end points, more of the steps at high signal-to-noise ratios
    "sigmoid_schedule": ("with", {"ddpm_beta_schedule": "sigmoid"}),
    # Adam's second-moment average over about 100 steps instead of 1,000: quicker to follow a short run's changing
    # gradients
    "adam_beta2": ("with", {"adam_beta2": 0.99}),
    # GroupNorm (8 groups) instead of the course's BatchNorm in ContextUnet's residual blocks: each image normalised
    # alone, in training as in sampling, and no running statistics for the last batches to leave noisy
    "group_norm": ("with", {"block_norm": "group"}),
    # labels dropped for a fifth of the samples (the recipe's since the twenty-fifth session) -> the course's tenth
    "label_dropout": ("without", {"cond_drop_prob": 0.1}),
    "narrow": ("without", {"n_feat": 64}),
    "balanced_classes": ("with", {"balance_classes": True}),
}
RECIPE = "best"  # the name of contender (c) in time_to_quality.py


def variant_name(lever: str) -> str:
    return RECIPE if lever == RECIPE else f"{LEVERS[lever][0]}_{lever}"


def train_variant(args, lever: str, budget_s: float, seed: int, workdir: Path, extra: list[str]):
    """The recipe with one lever changed (or, for `best`, as it is), through the real training entry."""
    flags, run_args = list(extra), copy.copy(args)
    if lever != RECIPE:
        values = LEVERS[lever][1]
        config = workdir / f"{lever}.yaml"
        config.write_text(yaml.safe_dump(values))
        flags += ["--config", str(config)]
        run_args.n_feat = values.get("n_feat", args.n_feat)  # train_package passes the width as a flag of its own
    preset = PRESETS[args.conditional]["best"]
    pipe, record = train_package(run_args, preset, budget_s, seed, workdir / lever, flags)
    if lever != RECIPE:  # what the run really trained with, from its own saved config (which leaves unset values out)
        saved = json.loads((workdir / lever / f"{preset}-{budget_s:g}-{seed}" / "training_config.json").read_text())
        record["lever_values"] = {key: saved["hyperparameters"].get(key) for key in LEVERS[lever][1]}
    return pipe, record


def table(results: dict, budget: str) -> dict:
    """Per variant at `budget`: mean / std of each score, steps, and FID(variant) - FID(best) when best is there."""
    rows = {}
    best = results.get(RECIPE, {}).get(budget)
    for name, by_budget in results.items():
        if budget not in by_budget:
            continue
        summary = by_budget[budget]
        row = {key: {"mean": summary[key]["mean"], "std": summary[key]["std"]}
               for key in ("fid", "kid", "class_accuracy") if key in summary}
        row.update(n_seeds=summary["n_seeds"], steps=statistics.fmean(summary["steps"]))
        if best is not None and name != RECIPE:
            row["fid_change_vs_best"] = summary["fid"]["mean"] - best["fid"]["mean"]
            # the same seed starts both runs from the same weights and data order: the change seed by seed
            recipe_fid = dict(zip(best["seeds"], best["fid"]["values"]))
            paired = [fid - recipe_fid[seed] for seed, fid in zip(summary["seeds"], summary["fid"]["values"])
                      if seed in recipe_fid]
            if paired:
                row["fid_change_by_seed"] = {"mean": statistics.fmean(paired), "n": len(paired), "values": paired,
                                             "std": statistics.stdev(paired) if len(paired) > 1 else 0.0}
        rows[name] = row
    return rows


def merge(args) -> dict:
    """Join lanes (and the curve's own (c) runs) at --budget into one result."""
    parts, runs = join_runs(args.merge)
    budget = f"{args.budget:g}"
    keep = {RECIPE} | {variant_name(lever) for lever in LEVERS}
    runs = {name: {budget: by_budget[budget]} for name, by_budget in runs.items() if name in keep and budget in by_budget}
    if not runs:
        raise SystemExit(f"error: none of {args.merge} has runs of the recipe or a lever at {budget} min")
    results = {name: {b: summarise(r) for b, r in by_budget.items()} for name, by_budget in runs.items()}
    seeds = sorted({r["seed"] for by_budget in runs.values() for records in by_budget.values() for r in records})
    levers = list(dict.fromkeys(lever for part in parts for lever in part.get("levers", [])))  # every lane's
    result = {**parts[0], "results": results, "runs": runs, "seeds": seeds, "budgets_min": [args.budget],
              "levers": levers,
              "merged_from": [str(p) for p in args.merge], "table": table(results, budget)}
    emit(result)
    return result


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/ablation.py --conditional --budget 10 --seeds 3")
    add_shared_arguments(parser)
    parser.add_argument("--budget", type=float, default=10.0, help="minutes per run")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=[RECIPE, *LEVERS],
                        help=f"levers to change, one run each ('{RECIPE}': the recipe as it is)")
    args = parser.parse_args(argv)
    args.levers = list(dict.fromkeys(args.levers))  # a lever named twice runs once per seed
    if args.merge:
        return merge(args)
    if args.quick:
        args.budget, args.seeds, args.num_samples, args.num_inference_steps = 0.5, 1, 100, 10
    if args.smoke:
        args.budget, args.seeds = 0.25, 1
    extra, _, arrays, reference, seeds = prepare(args)
    args.seeds_run = seeds
    budget = f"{args.budget:g}"
    runs = {variant_name(lever): {budget: []} for lever in args.levers}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in seeds:
            for lever in args.levers:  # interleaved per seed, so machine load hits every lever alike
                pipe, record = train_variant(args, lever, 60 * args.budget, seed, Path(workdir), extra)
                scores, by_eval_seed = score(args, pipe, reference)
                keep_model(args, pipe, variant_name(lever), args.budget, seed)
                runs[variant_name(lever)][budget].append({"seed": seed, "train": record, "scores": scores,
                                                          "scores_by_eval_seed": by_eval_seed})
                if args.grids_dir and seed == seeds[0]:
                    save_grid(args, pipe, Path(args.grids_dir) / f"{variant_name(lever)}.png", arrays[2] or 1)
        if args.grids_dir:
            save_real_grid(args, arrays, Path(args.grids_dir) / "real.png")
    results = {name: {b: summarise(r) for b, r in by_budget.items()} for name, by_budget in runs.items()}
    result = {"results": results, "runs": runs, "budgets_min": [args.budget], "levers": args.levers,
              "table": table(results, budget), **setup_record(args)}
    emit(result)
    return result


if __name__ == "__main__":
    main()
