"""The output folder a run owns: one run at a time, what a run may write over, and what a killed run left behind.

A run holds `.hf_sprites.lock` in its `--output_dir` from start to end (`fcntl.flock`, which the kernel releases when
the process dies, so a killed run never blocks the next one; the file names the holder for the message a second run
gets). Under the lock, before any work, `check_outputs` decides whether the run may write into the folder:

- a new or empty folder (the lock and leftovers of interrupted writes do not count): yes;
- a folder with a finished checkpoint and `--resume_from_checkpoint`: yes, the run continues that run;
- any other folder: only with `--overwrite_output_dir`;

and whenever the folder is not empty, nothing that hf_sprites did not write may sit where the run writes (inside
`unet/` or `scheduler/`, which are replaced whole, or a `checkpoint-N/` without `training_state.pt`): the run lists
those entries and stops, leaving them untouched. `prepare_folder` then finishes or undoes what a killed run left
(`hf_sprites.atomic.recover_folder`) and, with `--overwrite_output_dir`, removes the previous run's checkpoints and
names every entry the new run will replace. Files the package never writes (notes, other folders) are never touched.

Example:
    >>> import tempfile, pathlib
    >>> from hf_sprites.training.folder import occupied, own_output_dir
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with own_output_dir(root):
    ...     occupied(root)  # the lock does not count
    []
    >>> root.exists()  # created for the run and left empty: removed again
    False
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Optional

from diffusers.schedulers.scheduling_utils import SCHEDULER_CONFIG_NAME
from diffusers.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

from hf_sprites.atomic import is_leftover, recover_folder, remove_tree
from hf_sprites.hub.push import check_repo_id, resolve_token

from .config import TrainConfigError
from .output import (INDEX_FILE, STATE_FILE, checkpoint_step, find_checkpoint, hub_repo_id, is_checkpoint,
                     list_checkpoints, load_checkpoint_files)

logger = logging.getLogger(__name__)

LOCK_FILE = ".hf_sprites.lock"
# folders a run replaces whole, with the files hf_sprites writes in them
REPLACED_FOLDERS = {"unet": (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME), "scheduler": (SCHEDULER_CONFIG_NAME,)}
WRITTEN_FILES = (INDEX_FILE, "README.md", "samples.png", "denoising.gif", "trainer_state.json")
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


# --- one run at a time ---------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on an output folder for the life of a run; `acquire` raises `TrainConfigError` naming the
    run that holds it."""

    def __init__(self, folder):
        self.folder, self.path, self._fd = Path(folder), Path(folder) / LOCK_FILE, None

    def acquire(self) -> "RunLock":
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno in _NO_LOCKS:
                    logger.warning("%s cannot be locked (%s); make sure no other run writes to it", self.folder, err)
                    return self
                raise TrainConfigError(
                    f"--output_dir {self.folder} is in use by another training run ({_describe(holder)}); wait for it "
                    f"to end or choose another --output_dir. If that run no longer exists (a crashed machine sharing "
                    f"this folder), delete {self.path}") from None
            if _same_file(fd, self.path):
                self._fd = fd
            else:  # its previous owner removed the file between our open and our lock: lock the new one
                os.close(fd)
        previous = _read_holder(self._fd)
        if previous:
            logger.warning("Took over %s from a run that ended without releasing it (%s).", self.path,
                           _describe(previous))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "no details recorded"
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def own_output_dir(folder, *, is_main_process: bool = True):
    """Hold the lock on `folder` (created when missing) for the block, on the main process; a folder this created and
    that stays empty is removed again, so a run stopped by bad input leaves nothing behind."""
    folder = Path(folder)
    if not is_main_process:
        yield None
        return
    _check_not_a_file(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder)
    try:
        yield lock.acquire()
    finally:
        lock.release()
        if created and not any(folder.iterdir()):
            folder.rmdir()


# --- may this run write here? --------------------------------------------------------------------------------------


def _check_not_a_file(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TrainConfigError(f"--output_dir {out} is a file; pass a folder path")


def occupied(folder) -> list[str]:
    """The entries of `folder` that count: everything but the lock and leftovers of interrupted writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE and not is_leftover(p.name))


def foreign_entries(folder) -> list[str]:
    """What sits where a run writes but was not written by hf_sprites (a run would destroy it)."""
    folder, found = Path(folder), []
    for name, known in REPLACED_FOLDERS.items():
        place = folder / name
        if place.is_dir():
            found += [f"{name}/{p.name}" for p in sorted(place.iterdir()) if p.name not in known]
        elif place.exists():
            found.append(f"{name} (a file where the run writes a folder)")
    found += [f"{name}/ (a folder where the run writes a file)" for name in WRITTEN_FILES if (folder / name).is_dir()]
    complete = set(list_checkpoints(folder))
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if checkpoint_step(path.name) is not None and path not in complete:
            found.append(f"{path.name}/ (no {STATE_FILE}, so not a checkpoint of hf_sprites)")
    return found


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def check_folder(cfg) -> None:
    """Whether this run may write into `--output_dir` (the rules in the module docstring); raises `TrainConfigError`."""
    out, spec = Path(cfg.output_dir), cfg.resume_from_checkpoint
    resume_point = find_checkpoint(out, spec)
    entries = occupied(out)
    if not entries:
        return
    continuing = resume_point is not None and _inside(resume_point, out)
    if not (continuing or cfg.overwrite_output_dir):
        reason = f"holds no checkpoint to resume ({', '.join(entries[:5])})" if spec == "latest" else "is not empty"
        raise TrainConfigError(
            f"--output_dir {out} {reason}; pass --overwrite_output_dir to train into it anyway (it replaces only what "
            "hf_sprites writes), --resume_from_checkpoint latest to continue the run whose checkpoints it holds, or "
            "choose another folder")
    foreign = foreign_entries(out)
    if foreign:
        raise TrainConfigError(
            f"--output_dir {out} holds files hf_sprites did not write where this run would write: "
            f"{', '.join(foreign)}; move them out of the folder or choose another --output_dir (nothing was changed)")


def check_outputs(cfg, process_index: int = 0) -> Optional[str]:
    """The output folder, the checkpoint to resume and (with --push_to_hub) the Hub repo id and token, checked before
    any work; raises `TrainConfigError`. Returns the Hub token when pushing, else None."""
    spec, out = cfg.resume_from_checkpoint, Path(cfg.output_dir)
    _check_not_a_file(out)
    if spec and spec != "latest" and not is_checkpoint(spec):
        found = [p.name for p in list_checkpoints(out)]
        raise TrainConfigError(f"--resume_from_checkpoint {spec} is not a checkpoint folder (no {STATE_FILE}); pass "
                               f"'latest' or one of the checkpoint-N folders{f' in {out}: {found}' if found else ''}")
    check_folder(cfg)
    resume_point = find_checkpoint(out, spec)
    if resume_point is not None:
        check_checkpoint(resume_point, process_index)
    if not cfg.push_to_hub:
        return None
    check_repo_id(hub_repo_id(cfg))
    return resolve_token(cfg.hub_token)


def check_checkpoint(path, process_index: int = 0) -> None:
    """Every file of checkpoint `path` that this process will read must load; a resume that silently skipped one
    (accelerate ignores an unreadable random state) would no longer continue the same run."""
    try:
        load_checkpoint_files(path, process_index)
    except Exception as err:  # noqa: BLE001  (torch, pickle and OS errors alike mean: this file is damaged)
        others = [p.name for p in list_checkpoints(Path(path).parent) if p != Path(path)]
        raise TrainConfigError(
            f"checkpoint {path} cannot be resumed: {err}; restore that file, or resume from another checkpoint with "
            f"--resume_from_checkpoint PATH{f' (others here: {others})' if others else ''}") from None


# --- getting the folder ready --------------------------------------------------------------------------------------


def prepare_folder(cfg, *, resuming: bool) -> None:
    """Finish or undo interrupted writes; with --overwrite_output_dir (and no resume) remove the previous run's
    checkpoints and name what the run will replace. Main process only, under the lock."""
    out = Path(cfg.output_dir)
    for line in recover_folder(out):
        logger.warning("Recovered %s: %s", out, line)
    if not cfg.overwrite_output_dir or resuming:
        return
    old = list_checkpoints(out)
    replaced = [name for name in (*WRITTEN_FILES, *REPLACED_FOLDERS, "samples") if (out / name).exists()]
    if old or replaced:
        logger.warning("--overwrite_output_dir: removing the previous run's %s; replacing %s as this run writes them",
                       ", ".join(p.name for p in old) or "(no checkpoints)", ", ".join(replaced) or "nothing else")
    for path in old:
        remove_tree(path)
