"""Divergence: a NaN or infinite loss, gradient, weight or BatchNorm statistic stops the run before it is saved.

The hot loop adds no host sync. `Health.watch` records on the device the first optimizer step whose loss was not
finite; that record is read where the loop syncs anyway (the logging step) and before every save, where the
weights, buffers (BatchNorm running statistics) and EMA weights are checked too (`Health.check`). A failed check
raises `TrainingDiverged`, naming the step and the likely cause; the last checkpoint saved stays the latest.

With `--max_bad_steps N` the loop instead checks every optimizer step's gradients (one host sync per step,
`hf_sprites.training.step.SkipNonFinite`), skips a bad step (its update and its BatchNorm statistics) and logs it, and
stops only after more than N such steps.

Example:
    >>> import torch
    >>> from hf_sprites.training.health import non_finite_tensors
    >>> layer = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = layer.bias.fill_(float("nan"))
    >>> non_finite_tensors(layer)
    ['bias']
"""

from __future__ import annotations

import itertools
from typing import Optional

import torch
from accelerate.logging import get_logger

from .output import list_checkpoints
from .step import SkipNonFinite

logger = get_logger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss, gradients or weights of a run stopped being finite numbers; the message names the step and fix."""


def non_finite_tensors(module: torch.nn.Module, extra: Optional[dict] = None) -> list[str]:
    """Names of the floating-point parameters and buffers of `module` (and of `extra`) holding NaN or inf."""
    named = itertools.chain(module.named_parameters(), module.named_buffers(), (extra or {}).items())
    named = [(name, tensor) for name, tensor in named if tensor.is_floating_point()]
    if not named:
        return []
    bad = torch.stack([~torch.isfinite(tensor).all() for _, tensor in named]).tolist()  # one host sync
    return [name for (name, _), flag in zip(named, bad) if flag]


class Health:
    """The divergence checks of one run (see the module docstring)."""

    def __init__(self, cfg, device):
        self.cfg = cfg
        self.first_bad_step = torch.full((1,), -1, dtype=torch.long, device=device)
        self.skipped = 0
        self.skipper = SkipNonFinite() if cfg.max_bad_steps > 0 else None

    def watch(self, loss: torch.Tensor, step: int) -> None:
        """Remember `step` if `loss` is not finite and no earlier step was (on the device: no host sync)."""
        newly_bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)
        self.first_bad_step = torch.where(newly_bad, step, self.first_bad_step)

    def check(self, run, *, before: Optional[str] = None, all_processes: bool = True) -> None:
        """Raise `TrainingDiverged` if a watched loss was not finite, or (`before` a save: what is saved) if a weight,
        buffer or EMA weight is not. `all_processes`: called on every process (it then gathers their records)."""
        record = run.accelerator.gather(self.first_bad_step) if all_processes else self.first_bad_step
        bad_steps = [step for step in record.tolist() if step >= 0]
        if bad_steps:
            raise self.diverged(run, min(bad_steps), "the loss became NaN or infinite", before)
        if before is None:
            return
        ema = {f"ema.{i}": p for i, p in enumerate(run.ema.shadow_params)} if run.ema is not None else None
        bad = non_finite_tensors(run.unet, ema)
        if bad:
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            raise self.diverged(run, run.global_step, f"the weights hold NaN or infinite values ({shown})", before)

    def skip(self, run) -> None:
        """Count and log one skipped bad step (--max_bad_steps); raise `TrainingDiverged` past the bound."""
        self.skipped += 1
        step = run.global_step + 1
        if self.skipped > self.cfg.max_bad_steps:
            raise self.diverged(run, step, f"more than --max_bad_steps {self.cfg.max_bad_steps} optimizer steps had "
                                           "NaN or infinite gradients", None)
        logger.warning("Step %d: NaN or infinite gradients; skipped this update (%d of --max_bad_steps %d).", step,
                       self.skipped, self.cfg.max_bad_steps)

    def diverged(self, run, step: int, what: str, before: Optional[str]) -> TrainingDiverged:
        cfg = run.cfg
        causes = [f"--learning_rate {cfg.learning_rate:g} is probably too high for this model (try 10x lower)"]
        if cfg.mixed_precision == "fp16":
            causes.append("fp16 overflows easily (try --mixed_precision bf16 or no)")
        latest = list_checkpoints(run.output_dir)
        kept = f"the latest good checkpoint is {latest[-1]}" if latest else "no checkpoint of this run was kept"
        stopped = f"before saving {before}" if before else "at the logging step"
        return TrainingDiverged(
            f"Training diverged at step {step}: {what}. The run stopped {stopped}; nothing non-finite was saved and "
            f"{kept}. Likely cause: {'; '.join(causes)}. To skip a few bad batches instead, pass --max_bad_steps N.")
