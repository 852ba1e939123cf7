# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Atomic file writes for the hub helpers: write next to the target, then `os.replace`."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def _temporary_sibling(target: Path) -> Iterator[str]:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    with _temporary_sibling(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy `source` to `target` atomically."""
    target = Path(target)
    with _temporary_sibling(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
