"""Shared helpers for the benchmark scripts: machine description, device choice, data, JSON output.

The scripts in this folder import it as a sibling module (`python benchmarks/<script>.py ...`).

Example:
    >>> from common import runtime_info
    >>> sorted(runtime_info())[:3]
    ['cpu', 'cpu_count', 'device']
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "crawl-sprites"


def pick_device(name: str | None = None) -> torch.device:
    """`name` if given, else CUDA when present, else CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (the benchmark precision there), a no-op context on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def precision(device: torch.device) -> str:
    return "bf16" if device.type == "cuda" else "fp32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def runtime_info(device: torch.device | None = None) -> dict:
    """Where the numbers come from: device, precision, torch version, threads, CPU and GPU names."""
    from hf_sprites.training.plan import has_native_bf16

    device = device or pick_device()
    return {
        "device": device.type,
        "precision": precision(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        # one CPU name covers hosts with and without AVX-512 and bf16 kernels (the recipe's pace: more than 2x apart)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": has_native_bf16(),
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def timed(fn, device: torch.device) -> tuple[object, float]:
    """Run `fn()` and return (its result, wall seconds), synchronising CUDA around it."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def check_data_dir(path: str | os.PathLike) -> Path:
    """Fail early, with the fix, when the sprite data folder is missing."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(
            f"error: benchmark data not found at {path}. The benchmarks use crawl-sprites from the shared data folder "
            "(shared/data/crawl-sprites next to the repository); pass --data /path/to/crawl-sprites "
            "(any folder `datasets.load_dataset` can read, with an image and a label column)."
        )
    return path


def to_uint8_hwc(images: torch.Tensor):
    """[-1, 1] float (N, C, H, W) -> uint8 NumPy (N, H, W, C), the course's on-disk sprite format."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def emit(result: dict) -> None:
    """Print the result as the last output line: one JSON object."""
    print(json.dumps(result, sort_keys=True), flush=True)


def base_parser(description: str, example: str) -> argparse.ArgumentParser:
    """Flags every benchmark shares: --quick, --smoke, --device, --seed, --threads."""
    parser = argparse.ArgumentParser(
        description=description, epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run of under a minute on CPU, same JSON keys")
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes: proves the script runs (tests)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    return parser


def setup(args) -> torch.device:
    """Apply --threads and --seed; return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return pick_device(args.device)
