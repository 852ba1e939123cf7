"""Shared test fixtures: the real data in ../shared, offline Hub mode, tiny generated image folders."""

import os
from pathlib import Path

import numpy as np
import pytest

# Idle OpenMP threads that spin take the cores that working threads (and test subprocesses, which inherit this) need
# on a small shared CPU; set before torch is imported. An explicit value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One intra-op thread unless the environment says otherwise: training runs in the tests (in this process and in
# subprocesses, which inherit it) then take it as the user's choice instead of using every core of a shared CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def require_shared(subpath: str = "") -> Path:
    """Return `../shared/<subpath>` (next to the repository checkout), or skip the test when it is absent."""
    path = SHARED_DIR / subpath
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the real data that lives in ../shared beside the checkout")
    return path


@pytest.fixture
def shared_dir() -> Path:
    """The ../shared folder; skips the test when it is absent."""
    return require_shared()


@pytest.fixture
def hf_offline(monkeypatch):
    """Offline Hub mode for `datasets` and `huggingface_hub`, also when they were imported before the test."""
    import datasets
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


TINY_FOLDER_COLOURS = {"blue": (0, 0, 255), "red": (255, 0, 0)}


@pytest.fixture
def tiny_image_folder(tmp_path) -> Path:
    """An imagefolder: class sub-folders `blue/` and `red/`, three 8x8 RGB PNGs each, filled with that colour."""
    from PIL import Image

    root = tmp_path / "tiny_images"
    for name, colour in TINY_FOLDER_COLOURS.items():
        (root / name).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (8, 8), colour).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a test module: more OpenMP threads than free cores slow small models down ~10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sprite_arrays(tmp_path) -> Path:
    """The course's .npy layout with 48 generated 8x8 RGB sprites (a coloured square on white) and one-hot labels."""
    rng = np.random.default_rng(0)
    images = np.full((48, 8, 8, 3), 255, np.uint8)
    classes = np.arange(48) % 3
    for i, c in enumerate(classes):
        x, y = rng.integers(0, 4, size=2)
        images[i, y:y + 4, x:x + 4] = np.roll([220, 30, 30], c)
    folder = tmp_path / "sprites"
    folder.mkdir()
    np.save(folder / "sprites_48_8x8.npy", images)
    np.save(folder / "sprite_labels_nc_48_8x8.npy", np.eye(3, dtype=np.float32)[classes])
    return folder
