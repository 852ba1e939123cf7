"""diffusers flag parity (issue 9): --model_config_name_or_path, random crops without --center_crop, and
--config FILE.yaml; each bad input fails before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_shared
from hf_sprites.data import DeviceBatcher, ItemBatches, build_transform, load_images, make_batches, to_tensors
from hf_sprites.training import main, parse_train_args

QUICK = ["--max_train_steps", "2", "--train_batch_size", "8", "--max_train_samples", "32", "--eval_batch_size", "2",
         "--ddpm_num_inference_steps", "2", "--logger", "none", "--seed", "0", "--checkpointing_steps", "100",
         "--no-save_gif"]
UNET = {"_class_name": "UNet2DModel", "block_out_channels": [32, 64], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}

pytestmark = pytest.mark.usefixtures("one_thread")


def write_json(path: Path, values) -> str:
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    return str(path)


# --- --model_config_name_or_path -------------------------------------------------------------------------------------


def test_a_unet_config_file_is_the_architecture_and_the_run_fills_in_the_rest(tmp_path):
    from diffusers import UNet2DModel

    config = write_json(tmp_path / "unet.json", UNET)
    out = tmp_path / "out"  # the embedded digits: 8px grey, 10 classes
    main([*QUICK, "--model", "unet2d", "--model_config_name_or_path", config, "--output_dir", str(out)])
    unet = UNet2DModel.from_pretrained(out / "unet")
    assert list(unet.config.block_out_channels) == [32, 64] and unet.config.layers_per_block == 1
    assert (unet.config.sample_size, unet.config.in_channels, unet.config.num_class_embeds) == (8, 1, 10)
    assert "AttnDownBlock2D" in unet.config.down_block_types
    assert parse_train_args(["--model_config_name_or_path", config]).block_out_channels != (32, 64)


BAD_MODEL_CONFIGS = {
    "missing file": (lambda tmp: str(tmp / "nope.json"), [], "does not exist"),
    "not JSON": (lambda tmp: write_json(tmp / "bad.json", "{block_out_channels: [32"), [], "cannot be read"),
    "a scheduler config": (lambda tmp: write_json(tmp / "s.json", {"_class_name": "DDPMScheduler", "beta_end": 0.02}),
                           [], "config of DDPMScheduler, not of a UNet2DModel"),
    "unknown keys": (lambda tmp: write_json(tmp / "u.json", {"n_feat": 8}), [], r"keys \['n_feat'\]"),
    "other size": (lambda tmp: write_json(tmp / "z.json", {**UNET, "sample_size": 32}), [], "sample_size 32 but"),
    "labels": (lambda tmp: write_json(tmp / "l.json", {**UNET, "num_class_embeds": 10}), ["--no-conditional"],
               "num_class_embeds but this run trains without labels"),
    "does not build": (lambda tmp: write_json(tmp / "b.json", {**UNET, "up_block_types": ["UpBlock2D"]}), [],
                       "does not build a UNet2DModel"),
    "too many halvings": (lambda tmp: write_json(tmp / "h.json", {"_class_name": "UNet2DModel"}),
                          ["--resolution", "12"], "4 blocks halves the image 3 times"),  # the class default: 4
    "not unet2d": (lambda tmp: write_json(tmp / "c.json", UNET), ["--model", "context_unet"], "add --model unet2d"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODEL_CONFIGS))
def test_bad_model_configs_fail_before_anything_is_written(case, tmp_path):
    make_path, flags, message = BAD_MODEL_CONFIGS[case]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        main([*QUICK, "--model", "unet2d", "--model_config_name_or_path", make_path(tmp_path), *flags,
              "--output_dir", str(out)])
    assert not out.exists()


# --- random crop ---------------------------------------------------------------------------------------------------


@pytest.fixture
def wide_images(tmp_path) -> Path:
    """Eight 4x12 images: red counts the column (20 per column), green names the image (20 per index)."""
    folder = tmp_path / "wide" / "a"
    folder.mkdir(parents=True)
    for index in range(8):
        pixels = np.zeros((4, 12, 3), np.uint8)
        pixels[..., 0] = np.arange(12) * 20
        pixels[..., 1] = index * 20
        Image.fromarray(pixels).save(folder / f"{index}.png")
    return folder.parent


def data_flags(**changes):
    flags = dict(resolution=4, center_crop=False, interpolation="nearest", background=(0, 0, 0), train_batch_size=8,
                 seed=0, random_flip=False, balance_classes=False, max_train_samples=None, cache_on_device="auto", dataloader_num_workers=0)
    return SimpleNamespace(**{**flags, **changes})


CPU = SimpleNamespace(device=torch.device("cpu"), num_processes=1, process_index=0)


def crops_of(batches) -> list[list[int]]:
    """For three epochs, the first column of each image's crop, images in index order."""
    epochs = []
    for _ in range(3):
        (images, _), = list(batches)
        value = ((images[:, :2, 0, 0] + 1) / 2 * 255 / 20).round().long()  # (red, green) of the top-left pixel
        epochs.append([int(left) for _, left in sorted(zip(value[:, 1].tolist(), value[:, 0].tolist()))])
    return epochs


def test_without_center_crop_non_square_images_are_cut_at_seeded_random_places(wide_images):
    source = load_images(train_data_dir=str(wide_images))
    batches = make_batches(data_flags(), source, CPU, 3)
    assert isinstance(batches, ItemBatches)  # non-square images cannot share one preprocessed tensor
    first = crops_of(batches)
    assert all(0 <= left <= 8 for epoch in first for left in epoch) and len(set(first[0])) > 3  # anywhere ...
    assert len({tuple(epoch) for epoch in first}) == 3  # ... a new place every epoch ...
    assert crops_of(make_batches(data_flags(), source, CPU, 3)) == first  # ... the same for the same seed
    state = batches.state_dict()
    again = make_batches(data_flags(), source, CPU, 3)
    again.load_state_dict(state)
    assert crops_of(again) == crops_of(batches)  # and after a resume
    centre = make_batches(data_flags(center_crop=True), source, CPU, 3)
    assert isinstance(centre, DeviceBatcher)
    with pytest.raises(ValueError, match="--cache_on_device always cannot hold randomly cropped images"):
        make_batches(data_flags(cache_on_device="always"), source, CPU, 3)


def test_square_images_are_the_same_with_a_random_crop_as_before():
    data = require_shared("data/crawl-sprites")  # 32x32: the sprite presets resize them to 16
    source = load_images(train_data_dir=str(data))
    squash, random_crop = (build_transform(16, 3, interpolation="nearest", random_crop=flag) for flag in (False, True))
    assert torch.equal(to_tensors(source, squash, 64)[0], to_tensors(source, random_crop, 64)[0])
    batches = make_batches(data_flags(resolution=16, max_train_samples=64, background=(255, 255, 255)), source, CPU, 3)
    assert isinstance(batches, DeviceBatcher)


# --- --config FILE.yaml ----------------------------------------------------------------------------------------------


def test_a_settings_file_sits_between_the_preset_and_the_flags(tmp_path):
    settings = tmp_path / "mine.yaml"
    settings.write_text("preset: sprites\nlearning_rate: 3.0e-4\nnum_epochs: 7\nblock_out_channels: [32, 64]\n"
                        "logger: wandb\n")
    cfg = parse_train_args(["--config", str(settings), "--num_epochs", "9"])
    assert (cfg.model, cfg.resolution) == ("context_unet", 16)  # from the preset the file names
    assert (cfg.learning_rate, cfg.num_epochs, cfg.block_out_channels) == (3e-4, 9, (32, 64))
    assert cfg.logger == ("wandb",)


BAD_CONFIG_FILES = {
    "missing": (None, "is not a file"),
    "not YAML": ("learning_rate: [1e-3\n", "is not valid YAML"),
    "not a mapping": ("- learning_rate\n", "must be a YAML mapping"),
    "unknown key": ("learning_rte: 1.0e-3\n", r"unknown keys \['learning_rte'\]"),
    "wrong type": ("num_epochs: ten\n", "num_epochs must be a whole number, got 'ten'"),
    "wrong choice": ("model: resnet\n", "model must be one of context_unet, basic_unet, unet2d"),
    "nested": ("config: other.yaml\n", "do not nest"),
    "unknown preset": ("preset: spritez\n", "Unknown preset 'spritez'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG_FILES))
def test_bad_settings_files_fail_before_anything_is_written(case, tmp_path):
    text, message = BAD_CONFIG_FILES[case]
    settings = tmp_path / "settings.yaml"
    if text is not None:
        settings.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        main([*QUICK, "--config", str(settings), "--output_dir", str(out)])
    assert not out.exists()
