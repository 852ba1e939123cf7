"""Will the run fit? The memory a training run needs, estimated before the model is built, against what the device has.

The model is built on PyTorch's "meta" device (shapes only, no memory) and one training batch goes through it with
hooks that add up every layer's output, roughly what autograd keeps for the backward pass. The estimate is the
weights with their gradients, two Adam moments and (with EMA) the EMA copy, plus those activations, plus the
preprocessed dataset when it is kept on the device (`--cache_on_device`). It is compared with the memory the
training device has free (`psutil` for the CPU, shared by the processes of a CPU run; `torch.cuda.mem_get_info` for a
GPU); when it does not fit, the error names the largest `--resolution` and `--train_batch_size` that would.

Example:
    >>> from hf_sprites.training.config import parse_train_args
    >>> from hf_sprites.training.memory import estimate_memory
    >>> cfg = parse_train_args(["--preset", "sprites_context"])
    >>> small, large = (estimate_memory(cfg, channels=3, num_classes=5, num_items=1000, resolution=r) for r in (16, 32))
    >>> large.activations > 3 * small.activations  # four times the pixels
    True
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import psutil
import torch

from hf_sprites.data import keeps_on_device

from .builders import build_model
from .config import TrainConfigError, label_mode

logger = logging.getLogger(__name__)

GIB = 2**30
OPTIMIZER_COPIES = 4  # weights, gradients and Adam's two moments, all float32


@dataclasses.dataclass
class MemoryEstimate:
    """Bytes a run needs: `weights` (with gradients, optimizer state and, when `ema`, the EMA), `activations` (one
    batch), `data`."""

    weights: int
    activations: int
    data: int
    ema: bool = False

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.data

    def __str__(self) -> str:
        state = "optimizer and EMA state" if self.ema else "optimizer state"
        return (f"{self.total / GIB:.2f} GiB (weights, gradients, {state} {self.weights / GIB:.2f} "
                f"GiB, activations {self.activations / GIB:.2f} GiB, cached data {self.data / GIB:.2f} GiB)")


def layer_output_bytes(model: torch.nn.Module, inputs: tuple, kwargs: dict) -> int:
    """The bytes of every leaf layer's output for one forward pass of `model` (on the meta device: nothing is run)."""
    total = 0

    def add(module, args, output):
        nonlocal total
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()

    leaves = [module for module in model.modules() if not list(module.children())]
    handles = [module.register_forward_hook(add) for module in leaves]
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def estimate_memory(cfg, *, channels: int, num_classes: Optional[int], num_items: int,
                    resolution: Optional[int] = None, batch_size: Optional[int] = None) -> MemoryEstimate:
    """The memory of a run of `cfg` (at another `resolution` / `batch_size` when given) on one process."""
    size, batch = resolution or cfg.resolution, batch_size or cfg.train_batch_size
    sized = dataclasses.replace(cfg, resolution=size)
    with torch.device("meta"):
        model = build_model(sized, channels, num_classes if cfg.conditional else None)
        kwargs = {}
        if label_mode(cfg) == "class_labels":
            kwargs["class_labels"] = torch.zeros(batch, dtype=torch.long)
        images, timesteps = torch.empty(batch, channels, size, size), torch.zeros(batch, dtype=torch.long)
        activations = layer_output_bytes(model, (images, timesteps), kwargs)
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    copies = OPTIMIZER_COPIES + (1 if cfg.use_ema else 0)
    on_device = keeps_on_device(cfg.cache_on_device, num_items, channels, size)
    data = num_items * channels * size * size * 4 if on_device else 0
    return MemoryEstimate(weights=parameter_bytes * copies, activations=activations, data=data, ema=cfg.use_ema)


def available_memory(device: torch.device, num_processes: int = 1) -> Optional[int]:
    """Bytes free for one process on `device`: free GPU memory, or the machine's available RAM shared by the
    processes of a CPU run; None for devices whose free memory is unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        return psutil.virtual_memory().available // num_processes
    return None


def largest_fitting_resolution(cfg, available: int, **sizes) -> Optional[int]:
    """The largest image size below `cfg.resolution` (in the model's size steps) whose run fits in `available`."""
    step = 2 ** (len(cfg.block_out_channels) - 1) if cfg.model == "unet2d" else 4
    low, high, best = 1, cfg.resolution // step - 1, None
    while low <= high:
        middle = (low + high) // 2
        if estimate_memory(cfg, resolution=middle * step, **sizes).total <= available:
            best, low = middle * step, middle + 1
        else:
            high = middle - 1
    return best


def check_memory(cfg, source, channels: int, accelerator) -> MemoryEstimate:
    """Raise `TrainConfigError` when the run cannot fit in the training device's memory (before anything is built)."""
    num_items = min(len(source), cfg.max_train_samples or len(source))
    sizes = {"channels": channels, "num_classes": source.num_classes, "num_items": num_items}
    estimate = estimate_memory(cfg, **sizes)
    available = available_memory(accelerator.device, accelerator.num_processes)
    logger.info("Memory estimate of this run: %s; available: %s", estimate,
                "unknown" if available is None else f"{available / GIB:.2f} GiB")
    if available is None or estimate.total <= available:
        return estimate
    per_image = estimate.activations / cfg.train_batch_size
    batch = int((available - estimate.weights - estimate.data) // per_image) if per_image else 0
    smaller = largest_fitting_resolution(cfg, available, **sizes)
    fixes = [f"--resolution {smaller}" if smaller else "no smaller --resolution fits either"]
    if 1 <= batch < cfg.train_batch_size:
        fixes.append(f"--train_batch_size {batch} at this resolution")
    raise TrainConfigError(
        f"--resolution {cfg.resolution} with --model {cfg.model} and --train_batch_size {cfg.train_batch_size} needs "
        f"about {estimate}, but {accelerator.device} has {available / GIB:.2f} GiB free; the largest that fits: "
        f"{' or '.join(fixes)}")
