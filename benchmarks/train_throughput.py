"""Training throughput (images/s) in one process, same model, batch and data, for three loops:

(a) course: the DeepLearning.AI lab-2 loop (`course_loop.py`: per-item ToTensor+Normalize Dataset,
    DataLoader with one worker, fp32);
(b) package: hf_sprites' training loop exactly as `examples/train.py --preset sprites` runs it
    (`hf_sprites.training.loop.train_loop`: device-resident `DeviceBatcher`, `DiffusionLoss`,
    `train_batch` under accelerate), default flags;
(c) fast: the same loop with the package's speed flags: `--channels_last`, `--mixed_precision bf16`
    (on CUDA, and on CPUs with native bf16 such as AVX512-BF16/AMX), `--torch_compile` where it helps
    (CUDA, with `--torch_compile_mode reduce-overhead`: CUDA graphs replay a step's hundreds of small kernels
    without launching each; on CPU compiling did not help: a full CPU run measures the fp32 loop with and without it).
    `fast_img_per_s` is the device's chosen fast path (`fast_variant`); the other fast_* variants are evidence.
(d) readme: the README's own command, end to end in its own process, `accelerate launch examples/train.py --preset
    sprites_context_fast --train_data_dir DATA --time_budget_minutes M`; its images/s is the median of the run's
    own log (`trainer_state.json`), its threads what the run chose. It is not interleaved with (a)-(c), so its
    ratio (`ratio_readme`) is the figure a user sees beside a course loop measured moments before. It trains the
    preset's own model, ContextUnet n_feat 32 (rows (a)-(c): n_feat 64, `--n_feat`), so it counts the width too.

The variants run interleaved in rounds (a, b, c, a, b, c, ...) after an untimed warm-up each, so load
from other processes hits all of them alike; the ratios are totals over all rounds. The model is the
course ContextUnet (n_feat 64, 16x16 RGB, batch 100) on crawl-sprites composited on white.

Unless OMP_WAIT_POLICY is exported, `examples/train.py` (row d) chooses it at its start: PASSIVE when other work keeps
the CPUs busy, else OpenMP's default, which rows (a)-(c) use too; export it to measure every row under one policy
(the JSON records it, and row (d) the choice its run recorded).

Example:
    python benchmarks/train_throughput.py --quick
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (DEFAULT_DATA, REPO_ROOT, base_parser, check_data_dir, emit, runtime_info, setup, synchronize,
                    to_uint8_hwc)
from course_loop import CourseLoop

COURSE_FLAGS = ["--preset", "sprites", "--logger", "none", "--checkpointing_steps", "1000000",
                "--save_images_epochs", "1000000", "--save_model_epochs", "1000000"]


def package_config(data: str, output_dir: str, seed: int, extra: list[str]):
    """The `TrainConfig` examples/train.py builds for the sprites preset (plus `extra` flags)."""
    from hf_sprites.training import parse_train_args

    data_flags = [] if data == "embedded" else ["--train_data_dir", data]
    return parse_train_args([*COURSE_FLAGS, *data_flags, "--output_dir", output_dir, "--seed", str(seed), *extra])


def reset_accelerate_state() -> None:
    """Let the next `Accelerator` use another mixed precision (prepared models keep their own autocast)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


class PackageVariant:
    """hf_sprites' training run for `cfg`, advanced N optimizer steps at a time by the real `train_loop`."""

    def __init__(self, name: str, cfg, source):
        from hf_sprites.data import make_batches
        from hf_sprites.training.loop import build_run, make_accelerator

        reset_accelerate_state()
        self.name, self.cfg = name, cfg
        accelerator = make_accelerator(cfg)
        batches = make_batches(cfg, source, accelerator, 3)
        self.run = build_run(cfg, accelerator, source, batches, 3)
        self.planned_steps = self.run.max_train_steps  # the length of the preset's LR schedule
        self.device = accelerator.device

    def advance(self, steps: int) -> int:
        """Run `steps` more optimizer steps through `train_loop`; returns the images used."""
        from hf_sprites.training.loop import train_loop

        self.run.max_train_steps = self.run.global_step + steps
        train_loop(self.run)
        return steps * self.cfg.train_batch_size


class CourseVariant:
    """The course loop, advanced N steps at a time (its DataLoader iterator persists across calls)."""

    def __init__(self, sprites, n_feat: int, batch_size: int, device, seed: int, num_workers: int):
        self.name = "course"
        self.loop = CourseLoop(sprites, n_feat=n_feat, batch_size=batch_size, device=device, seed=seed,
                               num_workers=num_workers)
        self.device = self.loop.device

    def advance(self, steps: int) -> int:
        return self.loop.train(max_steps=steps)["images"]


def measure(variants, rounds: int, steps: int, warmup: int, evidence: frozenset = frozenset()) -> dict:
    """Warm every variant up, then time `rounds` interleaved segments of `steps` steps each. A variant named in
    `evidence` that fails is recorded with its error (and leaves the rounds) instead of ending the benchmark."""
    totals = {v.name: {"images": 0, "seconds": 0.0, "warmup_seconds": 0.0} for v in variants}
    failed: set[str] = set()

    def advance(v, n: int) -> int | None:
        if v.name not in evidence:
            return v.advance(n)
        try:
            return v.advance(n)
        except Exception as error:  # noqa: BLE001 -- an evidence variant's failure is a result, written to the JSON
            print(f"warning: variant {v.name} failed: {type(error).__name__}: {error}", file=sys.stderr)
            totals[v.name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
            failed.add(v.name)
            return None

    for v in variants:
        start = time.perf_counter()
        if advance(v, warmup) is not None:
            synchronize(v.device)
            totals[v.name]["warmup_seconds"] = time.perf_counter() - start
    for _ in range(rounds):
        for v in (v for v in variants if v.name not in failed):
            synchronize(v.device)
            start = time.perf_counter()
            images = advance(v, steps)
            synchronize(v.device)
            if images is not None:
                totals[v.name]["seconds"] += time.perf_counter() - start
                totals[v.name]["images"] += images
    for name, t in totals.items():
        if name not in failed:
            t["img_per_s"] = t["images"] / t["seconds"]
    return totals


def fast_flags(compile_model: bool, bf16: bool, cuda_graphs: bool = False) -> list[str]:
    """The training flags of one fast variant."""
    flags = ["--channels_last"]
    if bf16:
        flags += ["--mixed_precision", "bf16"]
    if compile_model:
        flags += ["--torch_compile"]
    if cuda_graphs:
        flags += ["--torch_compile_mode", "reduce-overhead"]
    return flags


def fast_settings(device_type: str, full_run: bool) -> list[tuple[bool, bool, bool]]:
    """(compile, bf16, CUDA graphs) to measure: the device's chosen fast path first, evidence variants after it."""
    if device_type == "cuda":  # CUDA graphs: 3.8x the course loop on an H200, where the launches bound the step
        evidence = [(True, True, False), (False, True, False), (True, False, True)]
        return [(True, True, True)] + (evidence if full_run else [])
    from hf_sprites.training.plan import has_native_bf16

    bf16 = [(False, True, False)] if has_native_bf16() else []
    return bf16 + [(False, False, False)] + ([(True, False, False)] if full_run else [])


def variant_name(compile_model: bool, bf16: bool, cuda_graphs: bool = False) -> str:
    return "fast_" + ("bf16" if bf16 else "fp32") + ("_compile" if compile_model else "") + \
        ("_cudagraphs" if cuda_graphs else "")


def build_variants(args, device, data: str, workdir: str) -> list:
    from hf_sprites.data import load_images
    from hf_sprites.data import make_transform

    size = ["--n_feat", str(args.n_feat), "--train_batch_size", str(args.batch_size)]
    base_cfg = package_config(data, f"{workdir}/b", args.seed, size)
    source = load_images(base_cfg.dataset_name, None, base_cfg.train_data_dir, "train")
    images = source_tensors(source, make_transform(base_cfg, 3))
    variants = [CourseVariant(to_uint8_hwc(images), args.n_feat, args.batch_size, device, args.seed, args.course_workers),
                PackageVariant("package", base_cfg, source)]
    for setting in fast_settings(device.type, not (args.quick or args.smoke)):
        name, flags = variant_name(*setting), fast_flags(*setting)
        config = package_config(data, f"{workdir}/{name}", args.seed, size + flags)
        variants.append(PackageVariant(name, config, source))
    return variants


def fast_names(names) -> list[str]:
    """The fast variants among `names`, in measuring order: the chosen path first (`fast_settings`), then evidence."""
    return [name for name in names if name.startswith("fast")]


def evidence_variants(variants) -> frozenset:
    """The fast variants after the chosen one: evidence, whose failure is reported, not fatal."""
    return frozenset(fast_names(v.name for v in variants)[1:])


def source_tensors(source, transform):
    from hf_sprites.data import to_tensors

    return to_tensors(source, transform)[0]


def summarize(totals: dict) -> dict:
    chosen = fast_names(totals)[0]
    course, package, fast = (totals[n]["img_per_s"] for n in ("course", "package", chosen))
    return {
        "course_img_per_s": course, "package_img_per_s": package, "fast_img_per_s": fast,
        "ratio_package": package / course, "ratio_fast": fast / course, "fast_variant": chosen,
        "variants": totals,
    }


def readme_command(data: str, minutes: float, workdir: str, extra: list[str]) -> dict:
    """(d): the README's training command in a subprocess; images/s and threads from the run's own record."""
    out = Path(workdir) / "readme"
    command = [sys.executable, "-m", "accelerate.commands.launch", str(REPO_ROOT / "examples" / "train.py"),
               "--preset", "sprites_context_fast", "--train_data_dir", data, "--time_budget_minutes", f"{minutes:g}",
               "--output_dir", str(out), *extra]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # as a user's shell: nothing chosen
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the README command failed:\n{done.stderr[-3000:]}")
    state = json.loads((out / "trainer_state.json").read_text())
    rates = [row["img_per_s"] for row in state["log_history"][1:]] or [row["img_per_s"] for row in state["log_history"]]
    width = json.loads((out / "training_config.json").read_text())["hyperparameters"]["n_feat"]
    return {"img_per_s": statistics.median(rates), "steps": state["global_step"], "cpu_threads": state["cpu_threads"],
            "n_feat": width, "command": " ".join(["accelerate launch examples/train.py", *command[4:]])}


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/train_throughput.py --rounds 3 --steps 6")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="crawl-sprites folder, or 'embedded' (digits)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (compilation happens here)")
    parser.add_argument("--n_feat", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--course_workers", type=int, default=1, help="course DataLoader workers (course: 1)")
    parser.add_argument("--readme_minutes", type=float, default=2.0, help="budget of the README-command row (d)")
    parser.add_argument("--no_readme", action="store_true", help="leave out the README-command row (d)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 2, 1
    if args.smoke:
        args.rounds, args.steps, args.warmup, args.n_feat, args.batch_size = 1, 1, 1, 8, 20
    data = args.data if args.data == "embedded" else str(check_data_dir(args.data))
    device = setup(args)
    with tempfile.TemporaryDirectory() as workdir:
        variants = build_variants(args, device, data, workdir)
        totals = measure(variants, args.rounds, args.steps, args.warmup, evidence_variants(variants))
        smoke = ["--n_feat", "8", "--train_batch_size", "20", "--eval_batch_size", "5", "--ddpm_num_inference_steps",
                 "2", "--logger", "none"] if args.smoke else []
        readme = readme_command(data, 0.3 if args.smoke else args.readme_minutes, workdir, smoke) \
            if data != "embedded" and not args.no_readme else None
    summary = summarize(totals)
    result = {
        **summary, "readme": readme,
        "ratio_readme": readme["img_per_s"] / summary["course_img_per_s"] if readme else None, "rounds": args.rounds, "steps_per_round": args.steps, "warmup_steps": args.warmup,
        "batch_size": args.batch_size, "n_feat": args.n_feat, "data": data,
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full", **runtime_info(device),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
