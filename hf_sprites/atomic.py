# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Atomic writes: write next to the target, then rename, so readers see the old file or folder or the whole new one.

The package's one place for write-then-rename: files (`temporary_sibling`, `atomic_write_text`, `atomic_copy`) and
folders (`atomic_folder`, `move_into_place`, `remove_tree`). Temporary files and folders from `tempfile` are private
(0600 / 0700); these helpers give the result the permissions a plain `open()` / `mkdir()` would have under the current
umask.

Every temporary name is `.<target>.hfs-<kind>-<tag>[.ext]` (kind: `tmp` a file being written, `stage` a folder being
filled, `old` a folder moved aside while its replacement moves in, `del` a folder being deleted), so that
`recover_folder` can tell what a killed process left behind from anything else in the folder and finish or undo it.
A write that fails because the disk is full raises `DiskFullError` (an `OSError`), which says so and names the target.

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

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_LEFTOVER = re.compile(r"^\.(?P<target>.+)\.hfs-(?P<kind>tmp|stage|old|del)-(?P<tag>[a-z0-9_]+)(?:\.[^.]*)?$")
_NO_SPACE_WORDS = ("no space left on device", "os error 28", "disk quota exceeded")
_WRITER_FAILURES = ("unexpected pos", "failed writing")  # torch.save's words for a short write (the errno is lost)


class DiskFullError(OSError):
    """A write failed because the file system is full; the message names what was being written."""


def _temporary_name(target: Path, kind: str) -> str:
    return f".{target.name}.hfs-{kind}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temporary_sibling(target: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_temporary_name(target, "tmp"), suffix=target.suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except (OSError, RuntimeError) as err:
        raise_if_disk_full(err, target)
        raise
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
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temporary_name(target, "stage")))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def staging_path(target: str | os.PathLike) -> Path:
    """The one staging folder name for `target` that several processes agree on (create it yourself).

    >>> staging_path("out/checkpoint-5").name
    '.checkpoint-5.hfs-stage-shared'
    """
    target = Path(target)
    return target.with_name(_temporary_name(target, "stage") + "shared")


def check_writable(folder: str | os.PathLike) -> None:
    """Create `folder` if needed and write (then remove) a temporary file in it, before any work that ends in a write:
    raises the `OSError` (permission denied, read-only file system, ...) that the real write would meet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=_temporary_name(folder / "probe", "tmp"))
    os.close(fd)
    os.unlink(probe)


def remove_tree(path: str | os.PathLike) -> None:
    """Delete folder `path` so that it is never seen half-deleted: rename it aside first, then delete the aside."""
    path = Path(path)
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_name(path, "del")))
    os.replace(path, aside / path.name)
    shutil.rmtree(aside)


def move_into_place(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename the finished file or folder `source` to `target` (same file system), replacing what `target` held.

    A file is swapped in one `os.replace`. A folder cannot be renamed over a non-empty folder, so an existing `target`
    is first renamed aside, `source` takes its place, and only then is the old folder deleted: at every moment `target`
    is either the complete old folder, absent for the instant between two renames, or the complete new one.
    """
    source, target = Path(source), Path(target)
    if source.is_dir() and target.exists():
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=_temporary_name(target, "old")))
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


# --- after a kill or a full disk -------------------------------------------------------------------------------------


def is_leftover(name: str) -> bool:
    """Whether a file or folder name is a temporary name of these helpers (see the module docstring).

    >>> is_leftover(".unet.hfs-old-k2j4_x9a"), is_leftover(".samples.png.hfs-tmp-abc.png"), is_leftover(".git")
    (True, True, False)
    """
    return _LEFTOVER.match(name) is not None


def recover_folder(folder: str | os.PathLike) -> list[str]:
    """Finish or undo what interrupted writes left in `folder` and its sub-folders (one level); returns what was done.

    A folder moved aside (`old`) whose target is missing was replaced by a process killed between two renames: it
    goes back. Every other leftover (a temporary file, a staging folder, a folder being deleted) is removed.
    """
    folder, done = Path(folder), []
    if not folder.is_dir():
        return done
    places = [folder] + [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for place in places:
        for path in sorted(place.iterdir()):
            match = _LEFTOVER.match(path.name)
            if match is None:
                continue
            original = path / match["target"]
            if match["kind"] == "old" and original.exists() and not (place / match["target"]).exists():
                os.replace(original, place / match["target"])
                done.append(f"restored {place / match['target']} (its replacement was interrupted)")
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            done.append(f"removed {path} (left by an interrupted write)")
    return done


def raise_if_disk_full(err: BaseException, target: str | os.PathLike) -> None:
    """Raise `DiskFullError` naming `target` when `err` (raised while writing it) comes from a full file system.

    Call it before removing the partial write: torch.save's error lost its errno, so a failed write on a disk with
    less than 1 MiB free is taken as a full disk.
    """
    target = Path(target)
    text = str(err).lower()
    full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(w in text for w in _NO_SPACE_WORDS)
    if not full and any(word in text for word in _WRITER_FAILURES):
        full = _free_bytes(target) < 2**20
    if full:
        raise DiskFullError(
            errno.ENOSPC,
            f"No space left on device while writing {target} ({_free_bytes(target) / 2**20:.1f} MiB free): free some "
            "space or write somewhere else; the previous files are unchanged",
        ) from err


def _free_bytes(target: Path) -> int:
    for place in (target, *target.parents):
        if place.exists():
            return shutil.disk_usage(place).free
    return 0
