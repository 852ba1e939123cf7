"""Sampling speed of hf_sprites' pipeline: DDPM (all steps), DDIM-25 and DPM-Solver-20 at batch 1, 32, 256.

For every (sampler, batch) it reports images/s through `SpritePipeline` (class-conditional, the
course ContextUnet at n_feat 64, 16x16 RGB), the time per denoising step, the pure UNet forward at
the same batch, and the scheduler overhead = step time - UNet time (target: <= 10% of a DDIM step
at batch 32). bf16 autocast on CUDA, fp32 on CPU.

Long cases are timed on fewer steps and scaled linearly to the full step count (every step costs
the same: one UNet call and one scheduler update); such rows say `"extrapolated": true` and how
many steps were timed. `--max_seconds_per_case` sets the limit.

Example:
    python benchmarks/sampling.py --quick
"""

from __future__ import annotations

import torch
from common import autocast, base_parser, emit, runtime_info, setup, timed

from hf_sprites import ContextUnet, SpritePipeline, SpriteScheduler
from hf_sprites.evaluation.sampling import as_sprite_pipeline, swap_sampler

CASES = (("ddpm", 500), ("ddim", 25), ("dpm", 20))
TARGET_OVERHEAD_PCT = 10.0


def build_pipeline(path, n_feat: int, device):
    if path:
        pipe, _ = as_sprite_pipeline(path, device)
        return pipe
    unet = ContextUnet(sample_size=16, n_feat=n_feat, n_cfeat=5).eval()
    pipe = SpritePipeline(unet=unet, scheduler=SpriteScheduler()).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def class_labels(pipe, batch: int):
    n = pipe.num_classes
    return torch.arange(batch) % n if n else None


def run_pipeline(pipe, batch: int, steps: int, device, seed: int = 0) -> float:
    """Seconds for one pipeline call of `steps` steps."""
    generator = torch.Generator().manual_seed(seed)

    def call():
        with autocast(device):
            return pipe(batch_size=batch, class_labels=class_labels(pipe, batch), num_inference_steps=steps,
                        generator=generator, output_type="pt")

    return timed(call, device)[1]


@torch.no_grad()
def unet_seconds(pipe, batch: int, device, min_seconds: float) -> float:
    """Mean seconds of one UNet forward at `batch`, called as the pipeline calls it."""
    unet = pipe.unet
    size = unet.config.sample_size
    sample = torch.randn(batch, unet.config.in_channels, size, size, device=device)
    _, cond = pipe.prepare_conditioning(batch, class_labels(pipe, batch), None, device, unet.dtype)
    t = torch.tensor(10, device=device)

    def call():
        with autocast(device):
            return unet(sample, t, **cond).sample

    call()
    total, reps = 0.0, 0
    while reps < 3 or total < min_seconds:
        total += timed(call, device)[1]
        reps += 1
    return total / reps


def measure_case(pipe, trained_scheduler, sampler, full_steps, batch, device, max_seconds, probe_steps) -> dict:
    pipe.scheduler = trained_scheduler
    swap_sampler(pipe, sampler)
    per_step = run_pipeline(pipe, batch, probe_steps, device) / probe_steps
    steps = full_steps if per_step * full_steps <= max_seconds else max(probe_steps, int(max_seconds / per_step))
    seconds = run_pipeline(pipe, batch, steps, device)
    step_s = seconds / steps
    unet_s = unet_seconds(pipe, batch, device, min_seconds=min(1.0, max_seconds / 10))
    call_s = step_s * full_steps
    return {
        "sampler": sampler, "steps": full_steps, "batch": batch, "img_per_s": batch / call_s,
        "seconds_per_call": call_s, "step_ms": 1000 * step_s, "unet_ms": 1000 * unet_s,
        "overhead_ms": 1000 * (step_s - unet_s), "overhead_pct": 100 * (step_s - unet_s) / step_s,
        "extrapolated": steps < full_steps, "steps_timed": steps,
    }


def main(argv=None) -> dict:
    parser = base_parser(__doc__.splitlines()[0], "python benchmarks/sampling.py --batch_sizes 1 32 256")
    parser.add_argument("--pipeline", default=None, help="a saved pipeline folder (default: a fresh n_feat-64 ContextUnet)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--max_seconds_per_case", type=float, default=None, help="default 60 (quick: 2)")
    args = parser.parse_args(argv)
    device = setup(args)
    n_feat, batches = (8, [1, 4]) if args.smoke else (64, args.batch_sizes)
    max_seconds = args.max_seconds_per_case or (0.5 if args.smoke else 2.0 if args.quick else 60.0)
    probe_steps = 1 if (args.quick or args.smoke) else 2
    pipe = build_pipeline(args.pipeline, n_feat, device)
    run_pipeline(pipe, 1, 2, device)  # warm-up: allocator, kernels, lazy init
    trained = pipe.scheduler
    rows = [measure_case(pipe, trained, s, n, b, device, max_seconds, probe_steps) for s, n in CASES for b in batches]
    reference = next((r for r in rows if r["sampler"] == "ddim" and r["batch"] == 32), None)
    result = {
        "results": rows,
        "ddim_b32_overhead_pct": reference["overhead_pct"] if reference else None,
        "target_overhead_pct": TARGET_OVERHEAD_PCT,
        "meets_overhead_target": bool(reference and reference["overhead_pct"] <= TARGET_OVERHEAD_PCT),
        "model": "pipeline " + args.pipeline if args.pipeline else f"ContextUnet n_feat={n_feat} 16x16 RGB, 5 classes",
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
        **runtime_info(device),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
