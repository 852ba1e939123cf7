# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Atomic writes: write next to the target, then `os.replace`, so readers see the old file or the whole new one.

Temporary files and folders from `tempfile` are private (0600 / 0700); these helpers give the result the permissions
a plain `open()` / `mkdir()` would have under the current umask.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temporary_sibling(target: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp" + target.suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def make_staging_dir(target: str | os.PathLike) -> Path:
    """A new empty folder beside `target`, to fill and then rename into place (see `publish_dir`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with temporary_sibling(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy `source` to `target` atomically."""
    with temporary_sibling(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)
