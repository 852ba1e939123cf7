"""Resumable checkpoints: `output_dir/checkpoint-<step>/`, written atomically, rotated by a total limit.

A checkpoint is `accelerator.save_state` (model, optimizer, LR scheduler, RNG of every process, grad
scaler) plus `training_state.pt`: the global step and epoch, the EMA state and the data position. It is
written to `.checkpoint-<step>.tmp` and renamed when complete, so an interrupted save never looks like a
checkpoint. Old checkpoints are removed only after the new one exists.

Example:
    >>> import tempfile, pathlib
    >>> from hf_sprites.training.checkpoints import find_checkpoint
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for step in (5, 40, 10):
    ...     (root / f"checkpoint-{step}").mkdir()
    >>> find_checkpoint(root, "latest").name
    'checkpoint-40'
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Optional

import torch

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir) -> list[Path]:
    """Finished checkpoints in `output_dir`, oldest (lowest step) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def find_checkpoint(output_dir, spec: Optional[str]) -> Optional[Path]:
    """Resolve `--resume_from_checkpoint`: "latest" (None when there is none yet) or a folder path."""
    if not spec:
        return None
    if spec == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    return Path(spec)


def is_checkpoint(path) -> bool:
    """Whether `path` is a complete checkpoint folder written by this module."""
    return (Path(path) / STATE_FILE).is_file()


def save_checkpoint(accelerator, output_dir, step: int, training_state: dict, total_limit: Optional[int] = None) -> Path:
    """Write checkpoint-`step` atomically from every process (call it on all of them)."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process has written its RNG state before the folder is renamed
    if accelerator.is_main_process:
        torch.save(training_state, tmp / STATE_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _rotate(output_dir, total_limit)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def _rotate(output_dir: Path, total_limit: Optional[int]) -> None:
    if not total_limit:
        return
    for old in list_checkpoints(output_dir)[:-total_limit]:
        shutil.rmtree(old)
        logger.info("Removed old checkpoint %s (checkpoints_total_limit=%d)", old, total_limit)


def load_checkpoint(accelerator, path) -> dict:
    """Restore model, optimizer, LR scheduler and RNG through accelerate; return `training_state` (CPU tensors)."""
    accelerator.load_state(str(path))
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
