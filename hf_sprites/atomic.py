# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Atomic writes: write next to the target, then rename, so readers see the old file or folder or the whole new one.

The package's one place for write-then-rename: files (`temporary_sibling`, `atomic_write_text`, `atomic_copy`) and
folders (`atomic_folder`, `move_into_place`). Temporary files and folders from `tempfile` are private (0600 / 0700);
these helpers give the result the permissions a plain `open()` / `mkdir()` would have under the current umask.

Example:

```py
>>> import json, tempfile
>>> from pathlib import Path
>>> from hf_sprites.atomic import atomic_folder, atomic_write_text
>>> root = Path(tempfile.mkdtemp())
>>> atomic_write_text(root / "result.json", json.dumps({"fid": 1.5})).read_text()
'{"fid": 1.5}'
>>> with atomic_folder(root / "model") as staging:
...     _ = (staging / "config.json").write_text("{}")
>>> sorted(p.name for p in root.iterdir())  # no temporary sibling is left behind
['model', 'result.json']

```
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


def make_staging_dir(target: str | os.PathLike) -> Path:
    """A new empty folder beside `target`, to fill and then rename into place (see `atomic_folder`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def move_into_place(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename the finished file or folder `source` to `target` (same file system), replacing what `target` held.

    A file is swapped in one `os.replace`. A folder cannot be renamed over a non-empty folder, so an existing `target`
    is first renamed aside, `source` takes its place, and only then is the old folder deleted: at every moment `target`
    is either the complete old folder, absent for the instant between two renames, or the complete new one.
    """
    source, target = Path(source), Path(target)
    if source.is_dir() and target.exists():
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
        try:
            os.replace(target, aside / target.name)
            try:
                os.replace(source, target)
            except OSError:
                os.replace(aside / target.name, target)  # put the old folder back
                raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(source, target)
    return target


@contextmanager
def atomic_folder(target: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield an empty folder beside `target` to fill; when the block ends without error, it becomes `target`.

    On error the staging folder is deleted and `target` is left as it was. An existing `target` is replaced through
    `move_into_place` (only once the new folder is complete); with `replace=False` an existing non-empty `target` is
    kept and the new folder is dropped instead (first writer wins: for caches that several processes may fill at once).

    ```py
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp()) / "pipeline"
    >>> with atomic_folder(out) as staging:
    ...     _ = (staging / "model_index.json").write_text("{}")
    ...     out.exists()  # readers see nothing until the block ends
    False
    >>> sorted(p.name for p in out.iterdir())
    ['model_index.json']

    ```
    """
    target = Path(target)
    staging = make_staging_dir(target)
    try:
        yield staging
        if replace:
            move_into_place(staging, target)
        else:
            _rename_unless_taken(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _rename_unless_taken(staging: Path, target: Path) -> None:
    try:
        os.replace(staging, target)  # fails on a non-empty folder: another writer got there first
    except OSError:
        if not (target.is_dir() and any(target.iterdir())):
            raise
