"""Time to quality: the same wall-clock training budget for (a) the course loop and (c) hf_sprites' fast path,
then domain-FID/KID of each with the same sampler, seed and sample count.

(a) `course_loop.CourseLoop` (lab 2 as the course writes it, including its noising without the square
    root on the noise term; `--course_standard_noise` switches that off to isolate the loop's speed);
(c) hf_sprites' `train_loop` for the `sprites` preset with the device's chosen speed flags from
    `train_throughput.py` (`--channels_last`, bf16 mixed precision where the device has native bf16,
    `--torch_compile` on CUDA).

Both follow the preset's recipe (32 epochs, lr decaying linearly per epoch to 0) and stop early when
it is complete. The budget counts from the first training step (model and data set-up excluded; compilation and
data loading inside the loop included). Both models are then sampled through `SpritePipeline` with
the course's schedule and scored by `hf_sprites.evaluation.evaluate` against crawl-sprites' train
split, with the domain classifier trained on that split's labels.

Example:
    python benchmarks/time_to_quality.py --minutes 10 --output_dir outputs/time_to_quality
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, base_parser, check_data_dir, emit, runtime_info, setup, synchronize, to_uint8_hwc
from train_throughput import CourseVariant, PackageVariant, fast_flags, fast_settings, package_config, source_tensors


def train_fast(variant: PackageVariant, budget_s: float) -> dict:
    """Advance the package run in chunks sized from the measured step time until the budget is spent
    or the preset's schedule (its planned number of steps) is complete."""
    start = time.perf_counter()
    steps, step_s = 0, None
    while steps < variant.planned_steps:
        remaining = budget_s - (time.perf_counter() - start)
        if remaining <= 0 or (step_s is not None and remaining < 0.5 * step_s):
            break
        chunk = 1 if step_s is None else max(1, int(0.5 * remaining / step_s))
        chunk = min(chunk, variant.planned_steps - steps)
        chunk_start = time.perf_counter()
        variant.advance(chunk)
        synchronize(variant.device)
        step_s = (time.perf_counter() - chunk_start) / chunk
        steps += chunk
    batches = variant.run.batches
    epochs = batches.epoch + batches.position / len(batches)
    return _train_stats(steps, steps * variant.cfg.train_batch_size, time.perf_counter() - start, epochs,
                        steps >= variant.planned_steps)


def train_course(variant: CourseVariant, budget_s: float) -> dict:
    loop = variant.loop
    stats = loop.train(max_seconds=budget_s)
    epochs = loop.epoch + (loop.steps_into_epoch / len(loop.dataloader) if not loop.finished else 0)
    return _train_stats(stats["steps"], stats["images"], stats["seconds"], epochs, loop.finished)


def _train_stats(steps: int, images: int, seconds: float, epochs: float, finished: bool) -> dict:
    return {"steps": steps, "images": images, "seconds": seconds, "img_per_s": images / seconds,
            "epochs": round(epochs, 2), "finished_recipe": finished}


def save_with_grid(pipe, folder: Path, args) -> None:
    """The trained pipeline folder plus `samples.png`: 64 samples (same sampler and seed as the evaluation)."""
    import torch

    from hf_sprites.evaluation import swap_sampler
    from hf_sprites.training.output import save_pipeline
    from hf_sprites.viz import image_grid, save_atomic

    save_pipeline(pipe.unet, pipe.scheduler, folder, conditional=False)
    grid_pipe = type(pipe)(unet=pipe.unet, scheduler=pipe.scheduler)
    grid_pipe.set_progress_bar_config(disable=True)
    swap_sampler(grid_pipe, args.sampler)
    images = grid_pipe(batch_size=64, num_inference_steps=args.num_inference_steps,
                       generator=torch.Generator().manual_seed(args.seed)).images
    save_atomic(image_grid(images, nrow=8, scale=4), folder / "samples.png")


def score(unet, args, device, name: str, output_dir) -> dict:
    """Save (optionally) and evaluate one trained unet with the shared sampler settings."""
    from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
    from hf_sprites.evaluation import ClassifierRecipe, evaluate

    clean = ContextUnet.from_config(unet.config)
    clean.load_state_dict({k: v.float() for k, v in unet.state_dict().items()})
    clean = clean.to(device).eval()
    pipe = SpritePipeline(unet=clean, scheduler=SpriteScheduler())
    if output_dir:
        save_with_grid(pipe, Path(output_dir) / name, args)
    return evaluate(
        pipe, reference=args.data_path, split="train", num_samples=args.num_samples,
        num_inference_steps=args.num_inference_steps, seed=args.seed, batch_size=args.eval_batch_size,
        sampler=args.sampler, conditional=False, device=device,
        classifier_recipe=ClassifierRecipe(epochs=1, width=8, feature_dim=16) if args.smoke else None,
        max_reference=300 if args.smoke else None, kid_subset_size=min(1000, args.num_samples),
    )


def build(args, device, workdir: str):
    from hf_sprites.data import load_images
    from hf_sprites.data import make_transform

    size = ["--n_feat", str(args.n_feat), "--train_batch_size", str(args.batch_size)]
    speed = fast_flags(*fast_settings(device.type, full_run=False)[0])
    cfg = package_config(args.data, f"{workdir}/fast", args.seed, size + speed)
    source = load_images(cfg.dataset_name, None, cfg.train_data_dir, "train")
    sprites = to_uint8_hwc(source_tensors(source, make_transform(cfg, 3)))
    course = CourseVariant(sprites, args.n_feat, args.batch_size, device, args.seed, args.course_workers)
    course.loop.standard_noise = args.course_standard_noise
    return course, PackageVariant("fast", cfg, source)


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/time_to_quality.py --minutes 10")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="crawl-sprites folder, or 'embedded' (digits)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per loop (quick: 0.25)")
    parser.add_argument("--num_samples", type=int, default=500, help="generated images per model for FID")
    parser.add_argument("--sampler", default="ddim", choices=["ddpm", "ddim", "dpm"])
    parser.add_argument("--num_inference_steps", type=int, default=25)
    parser.add_argument("--eval_batch_size", type=int, default=250)
    parser.add_argument("--n_feat", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--course_workers", type=int, default=1)
    parser.add_argument("--course_standard_noise", action="store_true", help="course loop with sqrt(1-abar) noise")
    parser.add_argument("--output_dir", default=None, help="save both trained pipelines here (course/, fast/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.num_samples, args.num_inference_steps = 0.25, 100, 10
    if args.smoke:
        args.minutes, args.num_samples, args.num_inference_steps, args.n_feat, args.batch_size = 0.02, 40, 2, 8, 20
    args.data_path = None if args.data == "embedded" else str(check_data_dir(args.data))
    device = setup(args)
    budget = 60.0 * args.minutes
    with tempfile.TemporaryDirectory() as workdir:
        course, fast = build(args, device, workdir)
        course_train = train_course(course, budget)
        fast_train = train_fast(fast, budget)
        course_eval = score(course.loop.model, args, device, "course", args.output_dir)
        fast_eval = score(fast.run.unet, args, device, "fast", args.output_dir)
    result = {
        "budget_s": budget, "course_fid": course_eval["fid"], "fast_fid": fast_eval["fid"],
        "course_kid": course_eval["kid_mean"], "fast_kid": fast_eval["kid_mean"],
        "course_train": course_train, "fast_train": fast_train,
        "fast_better_or_equal": fast_eval["fid"] <= course_eval["fid"],
        "course_noise": "standard sqrt(1-abar)" if args.course_standard_noise else "as the course: (1-abar) eps",
        "sampler": args.sampler, "num_inference_steps": args.num_inference_steps, "num_samples": args.num_samples,
        "feature_dim": fast_eval["feature_dim"], "classifier_train_accuracy": fast_eval.get("classifier_train_accuracy"),
        "n_feat": args.n_feat, "batch_size": args.batch_size, "data": args.data, "output_dir": args.output_dir,
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full", **runtime_info(device),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
