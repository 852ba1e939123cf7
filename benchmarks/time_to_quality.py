"""Time to quality: FID against minutes of training, for three contenders on the same data and evaluation.

(a) course:  the DeepLearning.AI lab-2 loop (`course_loop.CourseLoop`: per-item Dataset + DataLoader, fp32, Adam
             1e-3 decayed linearly per epoch) with the standard sqrt(1 - abar) noising, its LR decay spread over
             the epochs that fit the budget (timed on its own steps after a warm-up); lab 3 (context with dropout 0.1)
             for `--conditional`;
(b) package: `--preset sprites` (`sprites_context` for `--conditional`), the faithful port, budget-sized by
             `--time_budget_minutes` through the real `hf_sprites.training.train`;
(c) best:    `--preset sprites_fast` (`sprites_context_fast`), the package's quality-per-minute recipe, the same way.

Every run's budget counts from the start of its training call (data and model set-up included) to its last
step; the final save and the evaluation come after. All contenders use the same threads (`--threads`, default: the
usable cores), data and seeds, each its own model width (ContextUnet n_feat 64 for (a) and (b), the recipe preset's
own for (c): 32 with labels, 64 without; `--n_feat` gives all three one width), and are scored by
`hf_sprites.evaluation.evaluate` with the same sampler (DDIM 25), sample count (500), evaluation seeds
(`--eval_seeds`, default 0; with several, each model's scores are their means, and each seed's own scores stay in its
run's record) and, for `--conditional`, guidance scale and labels (FID and KID ask for the classes in the training
split's proportions, class accuracy for every class equally): FID and KID on the package's domain features against
the training split, and class accuracy. Contenders run interleaved per (budget, seed) so machine load hits them alike.

Output: the last line is JSON: per contender and budget the mean, std and n of FID / KID (/ class accuracy), and
the steps and images/s of the runs, every run's own record (`runs`) and the evaluator's real-vs-real `floor` (the
data's test split against its train split, where it has one); `--plot` writes FID against minutes with
error bars; `--grids_dir` keeps a sample grid of every contender at the largest budget (seed 0) beside a grid of
real images of the same size. `--seed_ids` and `--merge` split one curve over processes that each hold a core
(`--threads 1`) and join their JSON outputs into one result and plot.

Examples:
    python benchmarks/time_to_quality.py --budgets 2 5 10 20 --seeds 3 --plot docs/images/time_to_quality.png
    python benchmarks/time_to_quality.py --data ../shared/data/fashion-mnist --budgets 10
    python benchmarks/time_to_quality.py --quick
    python benchmarks/time_to_quality.py --threads 1 --budgets 10 --seed_ids 2 > lane2.json
    python benchmarks/time_to_quality.py --conditional --contenders best --budgets 10 --eval_seeds 0 1 2
    python benchmarks/time_to_quality.py --merge lane1.json lane2.json --plot docs/images/time_to_quality.png
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import DEFAULT_DATA, base_parser, check_data_dir, emit, runtime_info, setup, to_uint8_hwc
from course_loop import CourseLoop
from train_throughput import reset_accelerate_state

CONTENDERS = ("course", "package", "best")
PRESETS = {False: {"package": "sprites", "best": "sprites_fast"},
           True: {"package": "sprites_context", "best": "sprites_context_fast"}}
# the course loop warms up for this many steps (or one epoch, if shorter), then times as many again before it sizes its
# per-epoch LR decay to the budget
COURSE_PROBE_STEPS = 50
# conditional FID / KID ask for the classes in the training split's proportions (`hf_sprites.evaluation.evaluate`);
# outputs made before this was recorded asked for every class equally and do not merge with these
FID_LABELS = "reference"


# --- data -------------------------------------------------------------------------------------------------------


def data_geometry(data: str) -> dict:
    """Resolution and channels the contenders train at: crawl-sprites 16 px RGB (the course), others native grey."""
    from hf_sprites.data import load_images

    if data == "embedded":
        return {"resolution": 8, "in_channels": 1}
    source = load_images(train_data_dir=data)
    if source.pixels is not None:  # IDX / .npy arrays: their own size
        grey = source.pixels.ndim == 3 or source.pixels.shape[-1] == 1
        size = source.pixels.shape[1]
        return {"resolution": size - size % 4, "in_channels": 1 if grey else 3}
    return {"resolution": 16, "in_channels": 3}


def data_flags(data: str, geometry: dict) -> list[str]:
    flags = ["--resolution", str(geometry["resolution"]), "--in_channels", str(geometry["in_channels"])]
    return flags + ([] if data == "embedded" else ["--train_data_dir", data])


def training_arrays(cfg):
    """The training images as the package preprocesses them (uint8 NHWC) and their integer labels, for the course loop."""
    from hf_sprites.data import load_images, make_transform, to_tensors

    source = load_images(dataset_name=cfg.dataset_name, train_data_dir=cfg.train_data_dir)
    images, labels = to_tensors(source, make_transform(cfg, cfg.in_channels))
    if labels is not None and labels.is_floating_point():
        labels = labels.argmax(dim=1)
    return to_uint8_hwc(images), (labels.numpy() if labels is not None else None), source.num_classes


# --- the contenders ---------------------------------------------------------------------------------------------


def train_course(args, base_cfg, budget_s: float, seed: int, arrays):
    """(a): warm up, time the next steps (a whole epoch when one is at most `COURSE_PROBE_STEPS`), size the per-epoch LR
    decay to the epochs that fit, train until the budget. When less than one epoch fits (Fashion-MNIST: 600 steps
    per epoch), the course's first-epoch LR holds for the whole run, as it would in the course. Returns the model as
    a pipeline on the course's schedule, and the run's record."""
    from hf_sprites.schedulers import SpriteScheduler

    start = time.perf_counter()
    sprites, labels, num_classes = arrays
    width = {"n_feat": args.n_feat} if args.n_feat else {}  # else the course's own
    loop = CourseLoop(sprites, **width, n_cfeat=num_classes if args.conditional else 5, seed=seed,
                      batch_size=args.batch_size, num_workers=args.course_workers, standard_noise=True,
                      labels=labels if args.conditional else None, device=args.torch_device)
    epoch_steps = len(loop.dataloader)
    probe_steps = min(epoch_steps, COURSE_PROBE_STEPS)
    warm = loop.train(max_steps=probe_steps)  # device start-up and the first worker are not a step's cost
    probe = loop.train(max_steps=probe_steps)  # timed; a whole epoch includes its DataLoader worker's start
    epoch_seconds = probe["seconds"] * epoch_steps / probe["steps"]
    epochs_done = loop.epoch + loop.steps_into_epoch / epoch_steps
    remaining = budget_s - (time.perf_counter() - start)
    loop.num_epochs = max(loop.epoch + 1, int(epochs_done + max(0.0, remaining) / epoch_seconds))
    stats = loop.train(max_seconds=max(0.0, budget_s - (time.perf_counter() - start)))
    seconds = time.perf_counter() - start
    steps = warm["steps"] + probe["steps"] + stats["steps"]
    images = warm["images"] + probe["images"] + stats["images"]
    pipe = sprite_pipeline(loop.model, SpriteScheduler(num_train_timesteps=base_cfg.ddpm_num_steps))
    return pipe, {"steps": steps, "img_per_s": images / seconds, "seconds": seconds, "epochs_planned": loop.num_epochs,
                  "finished_plan": loop.finished, "n_feat": loop.model.config.n_feat}


def train_package(args, preset: str, budget_s: float, seed: int, workdir: Path, extra: list[str]):
    """(b) / (c): the real training entry with a time budget; returns the pipeline it saved (the EMA weights when the
    preset keeps an EMA; the noise schedule it trained with) and the run's own record (`trainer_state.json`)."""
    import json

    from hf_sprites.pipelines import SpritePipeline
    from hf_sprites.training import main

    out = workdir / f"{preset}-{budget_s:g}-{seed}"
    reset_accelerate_state()  # each run sets its own precision
    start = time.perf_counter()
    main(["--preset", preset, *extra, "--time_budget_minutes", f"{budget_s / 60:.6g}", "--seed", str(seed),
          "--output_dir", str(out), "--logger", "none", "--checkpointing_steps", "1000000000", "--no-save_gif",
          "--cpu_threads", str(torch.get_num_threads()), *(["--n_feat", str(args.n_feat)] if args.n_feat else [])])
    state = json.loads((out / "trainer_state.json").read_text())
    width = json.loads((out / "training_config.json").read_text())["hyperparameters"]["n_feat"]
    rates = [row["img_per_s"] for row in state["log_history"][1:]] or [0.0]
    record = {"steps": state["global_step"], "img_per_s": statistics.median(rates),
              "seconds_with_final_save": time.perf_counter() - start, "planned_steps": state["plan"]["total_steps"],
              "stopped_by_budget_at": state["stopped_by_budget_at"],
              "first_planned_steps": state["plan"].get("initial_total_steps"),
              "replanned_at": state["plan"].get("replanned_at"), "n_feat": width}
    saved = SpritePipeline.from_pretrained(out)
    return sprite_pipeline(saved.unet, saved.scheduler), record


# --- evaluation ---------------------------------------------------------------------------------------------------


def sprite_pipeline(unet, scheduler):
    """The pipeline a contender is scored with: a float copy of its unet and the noise schedule it trained with."""
    from hf_sprites.models import ContextUnet
    from hf_sprites.pipelines import SpritePipeline

    clean = ContextUnet.from_config(unet.config)
    clean.load_state_dict({k: v.float() for k, v in unet.state_dict().items()})
    return SpritePipeline(unet=clean.eval(), scheduler=scheduler)


def keep_model(args, pipe, name: str, budget: float, seed: int) -> None:
    """With --save_models_dir: save the model just scored as a pipeline folder that `hf-sprites evaluate` and
    `from_pretrained` load; written beside its place and renamed into it, replacing a folder of the same name."""
    from hf_sprites.atomic import atomic_folder

    if args.save_models_dir:
        with atomic_folder(Path(args.save_models_dir) / f"{name}-{budget:g}min-seed{seed}") as staging:
            pipe.save_pretrained(staging)


def score(args, pipe, reference) -> tuple[dict, dict]:
    """The scores of one model at each evaluation seed (`--eval_seeds`), and their means over those seeds: the samples
    (and the KID subsets) each seed draws move one model's FID by about half as much as the training seed does
    (README, eleventh session)."""
    from hf_sprites.evaluation import ClassifierRecipe, evaluate

    by_seed = {}
    for eval_seed in args.eval_seeds:
        result = evaluate(
            pipe, reference=reference, split="train", num_samples=args.num_samples,
            num_inference_steps=args.num_inference_steps, seed=eval_seed, batch_size=args.eval_batch_size,
            sampler="ddim", conditional=args.conditional, guidance_scale=args.guidance_scale if args.conditional else 1.0,
            classifier_recipe=ClassifierRecipe(epochs=1, width=8, feature_dim=16) if args.smoke else None,
            max_reference=300 if args.smoke else None, kid_subset_size=min(1000, args.num_samples),
            fid_labels=FID_LABELS,
        )
        by_seed[str(eval_seed)] = {"fid": result["fid"], "kid": result["kid_mean"]}
        if args.conditional:
            by_seed[str(eval_seed)]["class_accuracy"] = result["class_accuracy"]["mean"]
    means = {key: statistics.fmean(s[key] for s in by_seed.values()) for key in next(iter(by_seed.values()))}
    return means, by_seed


def real_floor(args, reference) -> dict | None:
    """The evaluator's real-vs-real floor: FID / KID of `--num_samples` test images (the whole test split when it is
    smaller) against the train split (the reference of every score), same features; None for the embedded digits."""
    from hf_sprites.evaluation import ClassifierRecipe, DomainFeatures, compare_images, load_or_train_domain_classifier
    from hf_sprites.evaluation import load_reference

    if reference is None or args.smoke:
        return None
    geometry = (args.geometry["resolution"], args.geometry["in_channels"])
    try:
        test, _, _ = load_reference(reference, "test", *geometry)
    except (ValueError, KeyError) as error:  # no test split in this data
        return {"skipped": str(error)}
    train, labels, source = load_reference(reference, "train", *geometry)
    classifier = load_or_train_domain_classifier(train, labels, ClassifierRecipe(), source.num_classes, None)
    by_seed = {}
    for eval_seed in args.eval_seeds:
        picked = test
        if len(test) > args.num_samples:  # the samples' count: FID's small-sample bias alike
            picked = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(eval_seed))[:args.num_samples]]
        scores = compare_images(picked, train, DomainFeatures(classifier), kid_subset_size=min(1000, len(picked)),
                                seed=eval_seed)
        by_seed[str(eval_seed)] = {"fid": scores["fid"], "kid": scores["kid_mean"]}
    return {"fid": statistics.fmean(s["fid"] for s in by_seed.values()),
            "kid": statistics.fmean(s["kid"] for s in by_seed.values()), "by_eval_seed": by_seed,
            "num_test": len(picked), "num_train": len(train)}


def save_grid(args, pipe, path: Path, num_classes) -> None:
    from hf_sprites.evaluation import swap_sampler
    from hf_sprites.viz import image_grid, save_atomic

    pipe.set_progress_bar_config(disable=True)
    swap_sampler(pipe, "ddim")
    kwargs = {"class_labels": [i % num_classes for i in range(8 * num_classes)], "guidance_scale": args.guidance_scale} \
        if args.conditional else {"batch_size": 64}
    images = pipe(**kwargs, num_inference_steps=args.num_inference_steps,
                  generator=torch.Generator().manual_seed(args.eval_seeds[0])).images
    save_atomic(image_grid(images, nrow=num_classes if args.conditional else 8, scale=4), path)


def save_real_grid(args, arrays, path: Path) -> None:
    from PIL import Image

    from hf_sprites.viz import image_grid, save_atomic

    sprites, labels, num_classes = arrays
    if args.conditional:
        picks = [int((labels == c).nonzero()[0][row]) for row in range(8) for c in range(num_classes)]
    else:
        picks = list(range(64))
    images = [Image.fromarray(sprites[i].squeeze()) for i in picks]
    save_atomic(image_grid(images, nrow=num_classes if args.conditional else 8, scale=4), path)


# --- the curve ----------------------------------------------------------------------------------------------------


def summarise(runs: list[dict]) -> dict:
    """mean / std / n of each score over seeds, and the runs' steps and images/s."""
    out = {"n_seeds": len(runs), "seeds": [r.get("seed") for r in runs], "steps": [r["train"]["steps"] for r in runs],
           "img_per_s": [round(r["train"]["img_per_s"], 1) for r in runs]}
    spreads = [statistics.stdev(s["fid"] for s in r["scores_by_eval_seed"].values()) for r in runs
               if len(r.get("scores_by_eval_seed", {})) > 1]
    if spreads:  # the evaluator's own spread: FID's std over the evaluation seeds within one model, averaged
        out["fid_eval_seed_std"] = statistics.fmean(spreads)
    for key in runs[0]["scores"]:
        values = [r["scores"][key] for r in runs]
        out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "values": values}
    return out


def plot(results: dict, path: Path, title: str, floor: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"course": "(a) course loop", "package": "(b) package, faithful preset", "best": "(c) package, best recipe"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name in (n for n in CONTENDERS if n in results):
        by_budget = results[name]
        budgets = sorted(by_budget, key=float)
        ax.errorbar([float(b) for b in budgets], [by_budget[b]["fid"]["mean"] for b in budgets],
                    yerr=[by_budget[b]["fid"]["std"] for b in budgets], marker="o", capsize=4, label=labels[name])
    if floor and "fid" in floor:  # real test images against the same reference: what a perfect model would score
        ax.axhline(floor["fid"], color="grey", linestyle=":", label=f"real test split ({floor['fid']:.2f})")
    ax.set_xlabel("training budget (minutes, set-up included)")
    ax.set_ylabel("FID (domain features, lower is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def last_json_line(path: Path) -> dict:
    """The JSON object on the last line of a benchmark's output file (or the whole file, where a result was saved
    indented, as some in `benchmarks/results/` are), or one error naming the file."""
    import json

    text = path.read_text().strip() if path.is_file() else ""
    for candidate in text.rsplit("\n", 1)[-1], text:  # the last line, then the whole file
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise SystemExit(f"error: {path} does not end with a benchmark's JSON line (missing, empty, or a run still "
                     "going or cut short?): pass the finished output of time_to_quality.py or ablation.py")


def join_runs(paths: list[str]) -> tuple[list[dict], dict]:
    """The outputs at `paths` (files whose last line is this script's or `ablation.py`'s JSON) and their `runs` joined
    per (contender, budget); refuses outputs of different setups and a (contender, budget, seed) given twice."""
    parts = [last_json_line(Path(path)) for path in paths]
    for part, path in zip(parts, paths):
        if "runs" not in part:
            raise SystemExit(f"error: {path} has no per-run records ('runs'); it was written before --merge existed or "
                             "by another script: run time_to_quality.py again to make it")
    same = ("data", "conditional", "num_samples", "sampler", "eval_seeds", "n_feat", "guidance_scale", "threads",
            "fid_labels")

    def setup(part: dict) -> dict:  # a data folder counts as the same however its path was written
        data = part.get("data")
        folder = Path(data) if data else None
        eval_seeds = part.get("eval_seeds", [part["eval_seed"]] if "eval_seed" in part else None)  # older outputs
        return {**part, "data": str(folder.resolve()) if folder is not None and folder.is_dir() else data,
                "eval_seeds": eval_seeds}

    for part, path in zip(parts[1:], paths[1:]):
        differing = [key for key in same if setup(part).get(key) != setup(parts[0]).get(key)]
        differing += [key for key in ("cpu_capability", "native_bf16")  # not recorded before the eleventh session
                      if key in part and key in parts[0] and part[key] != parts[0][key]]
        if differing:
            raise SystemExit(f"error: {path} differs from {paths[0]} in {differing}; merge only runs of one setup")
    runs: dict = {}
    for part in parts:
        for name, by_budget in part["runs"].items():
            for budget, records in by_budget.items():
                runs.setdefault(name, {}).setdefault(budget, []).extend(records)
    for name, by_budget in runs.items():
        for budget, records in by_budget.items():
            seeds = [r["seed"] for r in records]
            repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
            if repeated:
                raise SystemExit(f"error: {name} at {budget} min has seed(s) {repeated} in more than one input; give "
                                 "each lane its own --seed_ids")
            records.sort(key=lambda r: r["seed"])
    return parts, runs


def merge(args) -> dict:
    """Join the `runs` of several outputs made with the same evaluation into one result (and plot)."""
    parts, runs = join_runs(args.merge)
    results = {name: {b: summarise(r) for b, r in sorted(by_budget.items(), key=lambda kv: float(kv[0]))}
               for name, by_budget in runs.items()}
    seeds = sorted({r["seed"] for by_budget in runs.values() for records in by_budget.values() for r in records})
    if args.plot:
        plot(results, Path(args.plot), f"{Path(parts[0]['data']).name}, up to {len(seeds)} seed(s), "
             f"{parts[0].get('gpu') or parts[0]['cpu']}", parts[0].get("floor"))
    result = {**parts[0], "results": results, "runs": runs, "seeds": seeds, "merged_from": [str(p) for p in args.merge],
              "budgets_min": sorted({float(b) for by_budget in runs.values() for b in by_budget})}
    emit(result)
    return result


def add_shared_arguments(parser) -> None:
    """Data, seeds and evaluation flags shared with `ablation.py` (same data, same seeds, same scores)."""
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="crawl-sprites, a Fashion-MNIST IDX folder, or "
                        "'embedded' (scikit-learn digits)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per budget (0, 1, ...)")
    parser.add_argument("--seed_ids", type=int, nargs="+", default=None, help="these training seeds instead of --seeds")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="join the runs of earlier outputs (files whose last line is this script's JSON); trains nothing")
    parser.add_argument("--conditional", action="store_true", help="labels as context; adds class accuracy")
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="guidance of conditional evaluation")
    parser.add_argument("--num_samples", type=int, default=500)
    parser.add_argument("--num_inference_steps", type=int, default=25, help="DDIM steps of the evaluation")
    parser.add_argument("--eval_batch_size", type=int, default=250)
    parser.add_argument("--eval_seeds", "--eval_seed", dest="eval_seeds", type=int, nargs="+", default=[0],
                        help="score each model at these evaluation seeds and report the mean (grids: the first)")
    parser.add_argument("--n_feat", type=int, default=None,
                        help="one ContextUnet width for every contender (default: each its own, see above)")
    parser.add_argument("--grids_dir", default=None, help="a sample grid of every contender (or variant) after its "
                        "first seed's run at the largest budget, and a real grid")
    parser.add_argument("--save_models_dir", default=None, help="keep every trained model here as a pipeline folder "
                        "(NAME-BUDGETmin-seedSEED), to score again later with `hf-sprites evaluate` (other guidance, "
                        "sampler or evaluation seeds) without training again; a folder of the same name is replaced")


def prepare(args) -> tuple[list[str], object, tuple, str | None, list[int]]:
    """After parsing: apply --smoke, check the data, set threads and device; return the training flags of the data,
    the faithful preset's config, the training arrays, the evaluation reference and the seeds."""
    if args.smoke:
        args.num_samples, args.num_inference_steps, args.n_feat, args.eval_batch_size = 40, 2, 8, 40
    args.data = "embedded" if args.data == "embedded" else str(check_data_dir(args.data))
    if args.save_models_dir:  # before any training: a model that cannot be kept should not cost a run
        from hf_sprites.atomic import check_writable

        try:
            check_writable(args.save_models_dir)
        except OSError as error:
            raise SystemExit(f"error: --save_models_dir {args.save_models_dir} is not a folder this process can write "
                             f"({error.strerror or error}); pass a writable folder (it is created if missing).")
    args.torch_device = setup(args)
    args.geometry = data_geometry(args.data)
    extra = data_flags(args.data, args.geometry) + (["--train_batch_size", "20", "--eval_batch_size", "10",
                                                     "--ddpm_num_inference_steps", "2"] if args.smoke else [])
    from hf_sprites.training import parse_train_args

    base_cfg = parse_train_args(["--preset", PRESETS[args.conditional]["package"], *extra])
    reference = None if args.data == "embedded" else args.data  # evaluate() reads its train split
    seeds = args.seed_ids if args.seed_ids is not None else list(range(args.seeds))
    args.eval_seeds = list(dict.fromkeys(args.eval_seeds))  # a seed named twice scores once
    return extra, base_cfg, training_arrays(base_cfg), reference, seeds


def setup_record(args) -> dict:
    """The keys `join_runs` compares, and where the numbers come from."""
    return {"data": args.data, "geometry": args.geometry, "conditional": args.conditional, "seeds": args.seeds_run,
            "num_samples": args.num_samples, "sampler": f"ddim-{args.num_inference_steps}", "eval_seeds": args.eval_seeds,
            "n_feat": args.n_feat, "guidance_scale": args.guidance_scale if args.conditional else None,
            "fid_labels": FID_LABELS if args.conditional else None,
            "mode": "smoke" if args.smoke else "quick" if args.quick else "full", **runtime_info(args.torch_device)}


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/time_to_quality.py --budgets 10 --seeds 3")
    add_shared_arguments(parser)
    parser.add_argument("--budgets", type=float, nargs="+", default=[2, 5, 10, 20], help="minutes per run")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--batch_size", type=int, default=100, help="the course loop's batch (the course's own: 100; the fast presets use 50)")
    parser.add_argument("--course_workers", type=int, default=1)
    parser.add_argument("--plot", default=None, help="write FID against minutes here (PNG)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    if args.quick:
        args.budgets, args.seeds, args.num_samples, args.num_inference_steps = [0.5], 1, 100, 10
    if args.smoke:
        args.budgets, args.seeds, args.batch_size = [0.25], 2, 20
    extra, base_cfg, arrays, reference, seeds = prepare(args)
    args.seeds_run = seeds
    floor = real_floor(args, reference)  # before any training: a data problem shows up here, not after hours of runs
    runs = {name: {b: [] for b in args.budgets} for name in args.contenders}
    with tempfile.TemporaryDirectory() as workdir:
        for budget in args.budgets:
            for seed in seeds:
                for name in args.contenders:
                    if name == "course":
                        pipe, record = train_course(args, base_cfg, 60 * budget, seed, arrays)
                    else:
                        pipe, record = train_package(args, PRESETS[args.conditional][name], 60 * budget, seed,
                                                     Path(workdir), extra)
                    scores, by_eval_seed = score(args, pipe, reference)
                    keep_model(args, pipe, name, budget, seed)
                    runs[name][budget].append({"seed": seed, "train": record, "scores": scores,
                                               "scores_by_eval_seed": by_eval_seed})
                    if args.grids_dir and budget == max(args.budgets) and seed == seeds[0]:
                        save_grid(args, pipe, Path(args.grids_dir) / f"{name}.png", arrays[2] or 1)
        if args.grids_dir:
            save_real_grid(args, arrays, Path(args.grids_dir) / "real.png")
    runs = {name: {f"{b:g}": r for b, r in by_budget.items()} for name, by_budget in runs.items()}
    results = {name: {b: summarise(r) for b, r in by_budget.items()} for name, by_budget in runs.items()}
    if args.plot:
        info = runtime_info(args.torch_device)
        plot(results, Path(args.plot), f"{Path(args.data).name}, {len(seeds)} seed(s), {info['gpu'] or info['cpu']}", floor)
    result = {"results": results, "runs": runs, "budgets_min": args.budgets, "floor": floor, **setup_record(args)}
    emit(result)
    return result


if __name__ == "__main__":
    main()
