"""Nothing lost, nothing silently wrong: kill -9 at chosen and random points, then resume to the uninterrupted result;
two runs into one folder; a diverging run; a full disk; foreign files in the output folder; bad images and sizes.

Every run is a real tiny run on real files (ContextUnet, n_feat 8, 8 px, 6 steps). A kill is a real SIGKILL: the run is
forked from this process (imports already done) and a hook kills it at the chosen call, or the test kills it at a
random moment. Each test asserts what is on disk afterwards, byte for byte where nothing may change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hf_sprites.atomic
import hf_sprites.training.loop as loop_module
import hf_sprites.training.output as output_module
from hf_sprites.atomic import is_leftover
from hf_sprites.data import build_transform, choose_channels, load_images, to_tensors
from hf_sprites.training import TrainConfigError, main, parse_train_args
from hf_sprites.training.folder import LOCK_FILE
from hf_sprites.training.health import TrainingDiverged
from hf_sprites.training.output import STATE_FILE, list_checkpoints

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--model", "context_unet", "--n_feat", "8", "--resolution", "8", "--train_batch_size", "8", "--seed", "0",
    "--ddpm_num_inference_steps", "3", "--eval_batch_size", "4", "--logger", "none", "--logging_steps", "1",
    "--save_images_epochs", "1000", "--no-save_gif", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
    "--use_ema", "--checkpointing_steps", "2",
]
# 24 images in batches of 8: 3 steps an epoch, so the pipeline saved after epoch 1 is replaced by the final one
RUN = [*TINY, "--max_train_steps", "6", "--save_model_epochs", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    """The course's .npy layout: 24 generated 8x8 RGB sprites with one-hot labels."""
    rng = np.random.default_rng(0)
    images = np.full((24, 8, 8, 3), 255, np.uint8)
    for i in range(24):
        x, y = rng.integers(0, 4, size=2)
        images[i, y:y + 4, x:x + 4] = np.roll([220, 30, 30], i % 3)
    folder = tmp_path_factory.mktemp("sprites")
    np.save(folder / "sprites_24_8x8.npy", images)
    np.save(folder / "sprite_labels_nc_24_8x8.npy", np.eye(3, dtype=np.float32)[np.arange(24) % 3])
    return folder


def args_for(out: Path, sprites: Path, *extra: str) -> list[str]:
    return ["--train_data_dir", str(sprites), "--output_dir", str(out), *RUN, *extra]


@pytest.fixture(scope="module")
def reference(sprites, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must end up equal to."""
    out = tmp_path_factory.mktemp("reference") / "out"
    main(args_for(out, sprites))
    return out


def final_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def assert_same_weights(folder: Path, reference: Path) -> None:
    got, expected = final_weights(folder), final_weights(reference)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)


def snapshot(folder: Path) -> dict:
    """Every file's bytes and every folder under `folder`, to compare byte for byte."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else "<dir>" for p in folder.rglob("*")}


def strict_json(path: Path) -> dict:
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def assert_finished_cleanly(out: Path, reference: Path) -> None:
    """A complete pipeline equal to the reference, every checkpoint complete, no leftovers, no lock."""
    assert_same_weights(out, reference)
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if is_leftover(n)] and LOCK_FILE not in names
    assert all((p / STATE_FILE).is_file() for p in out.glob("checkpoint-*"))
    assert strict_json(out / "trainer_state.json")["global_step"] == 6
    assert (out / "model_index.json").is_file() and (out / "README.md").is_file()


# --- kill -9 and resume ------------------------------------------------------------------------------------------


def forked(run, *hooks) -> int:
    """Run `run()` in a forked copy of this process after installing `hooks` there; returns the wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            for hook in hooks:
                hook()
            run()
            code = 0
        except BaseException as err:  # noqa: BLE001
            print(f"forked run failed: {type(err).__name__}: {err}", file=sys.stderr)
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def killed_by_sigkill(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def kill_when(owner, name: str, condition):
    """A hook: in the forked run, `owner.name(...)` SIGKILLs the process when `condition(...)` holds for its args."""

    def install():
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if condition(*args, **kwargs):
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    return install


def during_final_unet_swap(out: Path):
    """True at the rename that moves the new unet/ in, while the old one is moved aside (the final save)."""
    return lambda src, dst, *a, **k: (Path(dst) == out / "unet"
                                      and any(p.name.startswith(".unet.hfs-old-") for p in out.iterdir()))


KILL_POINTS = {
    # name: (hook for the output folder, what must be on disk right after the kill)
    "mid-training": (lambda out: kill_when(loop_module, "after_update", lambda run, *a: run.global_step == 2),
                     lambda out: [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]),
    "inside accelerate's save_state of checkpoint-4": (
        lambda out: kill_when(torch, "save", lambda obj, f, *a, **k: ".checkpoint-4." in str(f)),
        lambda out: [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
        and not (out / "checkpoint-4").exists()),
    "checkpoint-4 written, not yet renamed": (
        lambda out: kill_when(output_module, "move_into_place", lambda src, dst: Path(dst).name == "checkpoint-4"),
        lambda out: [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
        and (out / ".checkpoint-4.hfs-stage-shared" / STATE_FILE).is_file()),
    "final save, old unet moved aside": (
        lambda out: kill_when(hf_sprites.atomic.os, "replace", during_final_unet_swap(out)),
        lambda out: not (out / "unet").exists() and "checkpoint-6" in [p.name for p in list_checkpoints(out)]
        and any(p.name.startswith(".pipeline.hfs-stage-") for p in out.iterdir())),  # left by the killed save
    "final save, before trainer_state.json": (
        lambda out: kill_when(loop_module, "write_trainer_state", lambda *a, **k: True),
        lambda out: (out / "unet").is_dir() and not (out / "trainer_state.json").exists()),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_at_a_chosen_point_then_resume_gives_the_uninterrupted_result(point, sprites, reference, tmp_path, caplog):
    out = tmp_path / "out"
    make_hook, on_disk_after_kill = KILL_POINTS[point]
    status = forked(lambda: main(args_for(out, sprites)), make_hook(out))
    assert killed_by_sigkill(status), f"the run was not killed at {point} (status {status})"
    assert on_disk_after_kill(out), sorted(p.name for p in out.iterdir())
    assert all((p / STATE_FILE).is_file() for p in out.glob("checkpoint-*")), "a half checkpoint is visible"

    caplog.set_level(logging.WARNING, logger="hf_sprites.training.output")
    main(args_for(out, sprites, "--resume_from_checkpoint", "latest"))
    assert_finished_cleanly(out, reference)
    assert "Took over" in caplog.text  # the killed run's lock file
    if point.startswith("final save, old unet"):
        assert "restored" in caplog.text


def test_kill_at_random_moments_then_resume_gives_the_uninterrupted_result(sprites, reference, tmp_path):
    start = time.perf_counter()
    forked(lambda: main(args_for(tmp_path / "timing", sprites)))
    duration = time.perf_counter() - start
    seed = random.randrange(10**6)
    for attempt, delay in enumerate(random.Random(seed).uniform(0.1, duration) for _ in range(2)):
        out = tmp_path / f"out{attempt}"
        pid = os.fork()
        if pid == 0:
            try:
                main(args_for(out, sprites))
            finally:
                os._exit(0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert all((p / STATE_FILE).is_file() for p in out.glob("checkpoint-*")), f"seed {seed}, delay {delay:.2f}"
        main(args_for(out, sprites, "--resume_from_checkpoint", "latest"))
        assert_finished_cleanly(out, reference)


# --- two runs, one folder -----------------------------------------------------------------------------------------


def test_a_second_run_into_a_folder_in_use_is_refused_and_changes_nothing(sprites, reference, tmp_path):
    out = tmp_path / "out"
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def pause_at_first_checkpoint():
        original = output_module.save_checkpoint

        def paused(*args, **kwargs):
            if kwargs["step"] == 2:
                os.write(ready_w, b"x")
                os.read(go_r, 1)
            return original(*args, **kwargs)

        output_module.save_checkpoint = paused
        loop_module.save_checkpoint = paused

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            pause_at_first_checkpoint()
            main(args_for(out, sprites))
            code = 0
        finally:
            os._exit(code)
    os.read(ready_r, 1)  # the first run holds the folder and is about to write checkpoint-2
    before = snapshot(out)
    for flags in ([], ["--overwrite_output_dir"], ["--resume_from_checkpoint", "latest"]):
        with pytest.raises(TrainConfigError, match=f"in use by another training run \\(pid {pid} on "):
            main(args_for(out, sprites, *flags))
        assert snapshot(out) == before
    os.write(go_w, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert_finished_cleanly(out, reference)
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]


def test_a_lock_held_by_this_process_names_it(sprites, tmp_path):
    from hf_sprites.training.folder import RunLock

    out = tmp_path / "out"
    out.mkdir()
    lock = RunLock(out).acquire()
    try:
        with pytest.raises(TrainConfigError, match=f"pid {os.getpid()}.*delete {out / LOCK_FILE}"):
            main(args_for(out, sprites))
        assert sorted(os.listdir(out)) == [LOCK_FILE]
    finally:
        lock.release()
    assert os.listdir(out) == []


# --- divergence ---------------------------------------------------------------------------------------------------


def assert_all_finite(path: Path) -> None:
    from safetensors.torch import load_file

    assert all(torch.isfinite(value).all() for value in load_file(path).values())


@pytest.mark.parametrize("learning_rate, what", [("1e30", "the loss became NaN"), ("1e4", "running_var")])
def test_a_diverging_run_stops_before_saving_anything_non_finite(learning_rate, what, sprites, tmp_path):
    out = tmp_path / "out"
    flags = ["--learning_rate", learning_rate, "--checkpointing_steps", "1", "--logging_steps", "5"]
    with pytest.raises(TrainingDiverged, match=f"step 2: {'.*' if what == 'running_var' else ''}{what}") as caught:
        main(args_for(out, sprites, *flags))
    message = str(caught.value)
    assert "--learning_rate" in message and f"latest good checkpoint is {out / 'checkpoint-1'}" in message
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-1"]
    assert_all_finite(out / "checkpoint-1" / "model.safetensors")
    assert not [p.name for p in out.iterdir() if p.name in ("unet", "model_index.json", "trainer_state.json")]
    assert not [p.name for p in out.rglob("*") if is_leftover(p.name) or p.name == LOCK_FILE]


def poison_batch(monkeypatch, number: int) -> None:
    """Batch `number` (1-based) of the run gets NaN pixels: one bad batch, as a corrupt record or overflow gives."""
    original, calls = loop_module.train_batch, []

    def train_batch(accelerator, model, images, **kwargs):
        calls.append(1)
        return original(accelerator, model, images * float("nan") if len(calls) == number else images, **kwargs)

    monkeypatch.setattr(loop_module, "train_batch", train_batch)


def test_one_bad_batch_stops_the_run_or_is_skipped_with_max_bad_steps(sprites, tmp_path, monkeypatch, caplog):
    poison_batch(monkeypatch, 3)
    with pytest.raises(TrainingDiverged, match="step 3: the loss became NaN.*before saving the pipeline"):
        main(args_for(tmp_path / "stopped", sprites, "--logging_steps", "5"))
    assert [p.name for p in list_checkpoints(tmp_path / "stopped")] == ["checkpoint-2"]

    monkeypatch.undo()
    poison_batch(monkeypatch, 3)
    caplog.set_level(logging.WARNING, logger="hf_sprites.training.health")
    out = tmp_path / "skipped"
    main(args_for(out, sprites, "--max_bad_steps", "1"))
    assert "Step 3: NaN or infinite gradients; skipped this update (1 of --max_bad_steps 1)" in caplog.text
    state = strict_json(out / "trainer_state.json")
    assert state["global_step"] == 6 and all(row["loss"] is not None for row in state["log_history"])
    assert_all_finite(out / "unet" / "diffusion_pytorch_model.safetensors")


# --- a full disk ---------------------------------------------------------------------------------------------------


def mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs at `folder` (as root); False where this user or machine cannot."""
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of `size` at `folder`, or None where mounting is not allowed."""
    folder.mkdir()
    mounted = mount_tmpfs(folder, f"size={size}")
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_during_a_checkpoint_says_so_and_keeps_the_last_checkpoint(sprites, reference, tmp_path,
                                                                             monkeypatch):
    args = ["--train_data_dir", str(sprites), *TINY, "--max_train_steps", "6", "--save_model_epochs", "1000"]
    with small_disk(tmp_path / "disk", "700k") as disk:
        if disk is None:  # no tmpfs without root: the write fails the way a full disk makes it fail
            disk = tmp_path / "disk"
            original = torch.save

            def full(obj, f, *a, **k):
                if ".checkpoint-4." in str(f):
                    raise OSError(28, "No space left on device")
                return original(obj, f, *a, **k)

            monkeypatch.setattr(torch, "save", full)
        out = disk / "out"
        with pytest.raises(OSError, match=f"No space left on device while writing {out / 'checkpoint-4'}"):
            main(["--output_dir", str(out), *args])
        assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
        assert not [p.name for p in out.rglob("*") if is_leftover(p.name) or p.name == LOCK_FILE]
        monkeypatch.undo()
        if disk.is_mount():
            subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # space freed
        main(["--output_dir", str(out), *args, "--resume_from_checkpoint", "latest"])
        assert_same_weights(out, reference)


# --- a foreign folder ----------------------------------------------------------------------------------------------


def foreign_folder(root: Path) -> Path:
    """A folder the package never wrote: notes, a folder of its own, weights inside unet/, a checkpoint-3/."""
    out = root / "foreign"
    for name, content in {"keep.txt": b"mine", "notes/a.txt": b"notes", "unet/my_weights.bin": b"\x00weights",
                          "checkpoint-3/notes.txt": b"not a checkpoint", "README.md": b"# my project\n"}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    return out


FOREIGN_CASES = {
    "no flag": ([], "is not empty"),
    "--resume_from_checkpoint latest": (["--resume_from_checkpoint", "latest"], "holds no checkpoint to resume"),
    "--overwrite_output_dir": (["--overwrite_output_dir"], "did not write where this run would write: unet/my_weigh"),
    "both": (["--overwrite_output_dir", "--resume_from_checkpoint", "latest"], "checkpoint-3/ \\(no training_state"),
}


@pytest.mark.parametrize("case", list(FOREIGN_CASES))
def test_a_foreign_folder_is_left_byte_for_byte(case, sprites, tmp_path):
    out = foreign_folder(tmp_path)
    before = snapshot(out)
    flags, message = FOREIGN_CASES[case]
    with pytest.raises(TrainConfigError, match=message):
        main(args_for(out, sprites, *flags))
    assert snapshot(out) == before


def test_overwrite_replaces_only_what_the_package_wrote(sprites, reference, tmp_path, caplog):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "checkpoint-8").mkdir()  # pretend an older, longer run: the new run must not resume or keep it
    for name in os.listdir(out / "checkpoint-6"):
        shutil.copy(out / "checkpoint-6" / name, out / "checkpoint-8" / name)
    (out / "keep.txt").write_bytes(b"mine")
    (out / "notes").mkdir()
    (out / "notes" / "a.txt").write_bytes(b"notes")
    foreign = {k: v for k, v in snapshot(out).items() if k.startswith(("keep.txt", "notes"))}
    caplog.set_level(logging.WARNING, logger="hf_sprites.training.output")
    main(args_for(out, sprites, "--overwrite_output_dir"))
    assert "removing the previous run's checkpoint-2, checkpoint-4, checkpoint-6, checkpoint-8" in caplog.text
    assert {k: v for k, v in snapshot(out).items() if k.startswith(("keep.txt", "notes"))} == foreign
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert_finished_cleanly(out, reference)


def test_a_tampered_random_state_stops_the_resume(reference, sprites, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "checkpoint-6" / "random_states_0.pkl").write_bytes(b"tampered")
    before = snapshot(out)
    with pytest.raises(TrainConfigError, match="checkpoint-6/random_states_0.pkl cannot be read.*checkpoint-4"):
        main(args_for(out, sprites, "--resume_from_checkpoint", "latest"))
    assert snapshot(out) == before


# --- images and sizes ----------------------------------------------------------------------------------------------


def image_folder(root: Path, images: dict) -> Path:
    folder = root / "images" / "a"
    folder.mkdir(parents=True)
    for name, image in images.items():
        image.save(folder / name)
    return folder.parent


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path, hf_offline):
    dim = 0.13
    folder = image_folder(tmp_path, {
        "a16.png": Image.fromarray(np.full((8, 8), round(dim * 65535), np.uint16)),  # PIL mode I;16
        "b32.tif": Image.fromarray(np.full((8, 8), dim, np.float32)),  # PIL mode F, 0..1
    })
    source = load_images(train_data_dir=str(folder), cache_dir=str(tmp_path / "cache"))
    assert choose_channels(source) == (1, None)
    images, _ = to_tensors(source, build_transform(8, channels=1))
    brightness = (images + 1) / 2
    torch.testing.assert_close(brightness, torch.full_like(brightness, dim), atol=1 / 255, rtol=0)


def test_channels_come_from_every_image_and_cmyk_and_palette_convert_to_rgb(tmp_path, hf_offline, caplog):
    from hf_sprites.training.builders import image_channels

    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)  # index 1 is green
    folder = image_folder(tmp_path, {
        "0_grey.png": Image.new("L", (8, 8), 128),  # the first file is grey: it must not decide
        "1_cmyk.tif": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),  # red
        "2_palette.png": palette,
    })
    source = load_images(train_data_dir=str(folder), cache_dir=str(tmp_path / "cache"))
    caplog.set_level(logging.WARNING, logger="hf_sprites.training.builders")
    cfg = parse_train_args(["--train_data_dir", str(folder), "--resolution", "8"])
    assert image_channels(cfg, source) == 3
    assert "mixes 1 greyscale and 2 colour images" in caplog.text and "--in_channels 1" in caplog.text
    images, _ = to_tensors(source, build_transform(8, channels=3))
    colours = ((images[:, :, 0, 0] + 1) * 127.5).round().tolist()
    assert colours == [[128, 128, 128], [255, 0, 0], [0, 255, 0]]
    cfg.in_channels = 1
    assert image_channels(cfg, source) == 1


def test_a_resolution_too_large_for_this_machine_fails_before_the_model_is_built(tmp_path):
    from hf_sprites.training.memory import estimate_memory

    out = tmp_path / "out"
    with pytest.raises(TrainConfigError, match="needs about .* GiB") as caught:
        main(["--model", "context_unet", "--resolution", "4096", "--output_dir", str(out), "--logger", "none"])
    assert not out.exists()
    message = str(caught.value)
    fitting = int(message.split("that fits: --resolution ")[1].split()[0])
    free = float(message.split(" has ")[1].split(" GiB free")[0]) * 2**30
    sizes = {"channels": 1, "num_classes": 10, "num_items": 1797}  # the embedded digits
    needed = [estimate_memory(parse_train_args(["--model", "context_unet", "--resolution", str(size)]), **sizes).total
              for size in (fitting, fitting + 4)]
    rounding = 0.005 * 2**30  # the message gives the free memory to 0.01 GiB
    assert 4 <= fitting < 4096 and needed[0] <= free + rounding and needed[1] > free - rounding


def test_the_memory_estimate_counts_and_names_the_ema_only_when_the_run_has_one():
    from hf_sprites.training.memory import estimate_memory

    sizes = {"channels": 1, "num_classes": 10, "num_items": 1797}
    with_ema, without = (estimate_memory(parse_train_args(["--model", "context_unet", flag]), **sizes)
                         for flag in ("--use_ema", "--no-use_ema"))
    assert with_ema.weights * 4 == without.weights * 5  # weights, gradients, two Adam moments (+ the EMA copy)
    assert "EMA" in str(with_ema) and "EMA" not in str(without)


# --- smaller faults ------------------------------------------------------------------------------------------------


def test_a_broken_pipeline_folder_names_the_file(reference, tmp_path):
    from hf_sprites.hub import load_pipeline

    broken = tmp_path / "broken"
    shutil.copytree(reference, broken, ignore=shutil.ignore_patterns("checkpoint-*"))
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="unet/diffusion_pytorch_model.safetensors is missing"):
        load_pipeline(broken)
    (broken / "model_index.json").write_text("{\n")
    with pytest.raises(ValueError, match=f"{broken / 'model_index.json'} is not valid JSON"):
        load_pipeline(broken)


@contextlib.contextmanager
def read_only_folder(folder: Path):
    folder.mkdir()
    mounted = mount_tmpfs(folder, "ro,size=64k")
    if not mounted:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o755)


def test_sampling_into_a_read_only_folder_fails_before_loading_the_model(reference, tmp_path, capsys):
    from hf_sprites.cli import main as cli_main

    unloadable = tmp_path / "model"
    unloadable.mkdir()
    (unloadable / "model_index.json").write_text("{\n")  # loading it would fail with another message
    with read_only_folder(tmp_path / "ro") as folder:
        if os.access(folder, os.W_OK):
            pytest.skip("this user can write into read-only folders")
        assert cli_main(["sample", str(unloadable), "--output", str(folder / "grid.png")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot be written" in error and "Nothing was sampled" in error


def test_a_bad_flag_under_examples_train_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "examples" / "train.py"), "--resolution", "18",
                             "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "hf-sprites train: error: ContextUnet cannot take 18px images (it needs a multiple of 4); use --resolution 16 "
        "or 20"]
    assert not (tmp_path / "out").exists()
