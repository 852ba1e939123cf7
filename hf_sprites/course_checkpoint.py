# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Turn the DeepLearning.AI course's saved ContextUnet (`model_trained.pth`, `context_model_trained.pth`) into a
pipeline folder with the course's 500-step schedule.

The course checkpoints are plain `state_dict`s of its ContextUnet, and `hf_sprites.ContextUnet` keeps the course's
module names, so the key map is the identity, plus one layer the course does not save:

**The init block's 1x1 shortcut.** When the channel count changes (3 -> n_feat), the course's residual init block adds
`shortcut(x)` from a 1x1 conv that it creates anew, with random untrained weights, inside every forward call. The
checkpoint therefore holds no weights for it, and the course model itself gives a different output at every call.
`ContextUnet` has a registered, learned `init_conv.shortcut`; the converter sets its weight and bias to **zero**.
PyTorch draws a fresh conv's weight and bias from uniform distributions centred on zero, so zero is the mean of the
course's random conv: the converted model computes the course's forward with that random term replaced by its
expectation, deterministically. Its outputs equal the course module's exactly when the course's fresh conv is zero,
and differ from any single course call by the network's response to that call's random projection of the input.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from .atomic import atomic_folder
from .hub.card import write_model_card
from .models import ContextUnet
from .pipelines import SpritePipeline
from .schedulers import SpriteScheduler

#: The course's five sprite context features (lab 3), in the order of its one-hot label vectors.
COURSE_CLASS_NAMES = ("hero", "non-hero", "food", "spell", "side-facing")
SHORTCUT_KEYS = ("init_conv.shortcut.weight", "init_conv.shortcut.bias")
#: Keys the ContextUnet config is read from (shape -> config value).
_SHAPE_KEYS = ("init_conv.conv1.0.weight", "contextembed1.model.0.weight", "up0.0.weight", "out.3.weight")


def load_course_state_dict(ckpt_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """`torch.load(weights_only=True)` of a course checkpoint, checked to be a flat state dict of tensors."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. Pass the course's model_trained.pth or context_model_trained.pth.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path} is not a PyTorch state dict that loads with weights_only=True ({type(err).__name__}). Save the "
            "course model with `torch.save(nn_model.state_dict(), path)` and convert that file."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        found = sorted(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a flat state dict of tensors (found {found}). Expected what the course saves with "
            "`torch.save(nn_model.state_dict(), path)`: keys like 'init_conv.conv1.0.weight' mapping to tensors."
        )
    return state


def course_unet_config(state: dict[str, torch.Tensor]) -> dict:
    """The `ContextUnet` config of a course state dict, read from its weight shapes."""
    missing = [k for k in _SHAPE_KEYS if k not in state]
    if missing:
        raise ValueError(
            f"Not a course ContextUnet state dict: it lacks {missing} (it has {len(state)} keys, e.g. "
            f"{sorted(state)[:3]}). Expected the keys of the course's ContextUnet, e.g. 'init_conv.conv1.0.weight', "
            "'contextembed1.model.0.weight', 'up0.0.weight', 'out.3.weight'."
        )
    n_feat, in_channels = state["init_conv.conv1.0.weight"].shape[:2]
    kernel = state["up0.0.weight"].shape[-1]
    if kernel != 4:
        raise ValueError(
            f"This checkpoint was trained at height {4 * kernel} (up0 kernel {kernel}). The course pools the 4x4 map "
            "with AvgPool2d(4), which hf_sprites' ContextUnet reproduces only for the course's 16x16 sprites; only "
            "16x16 course checkpoints convert exactly."
        )
    return {
        "sample_size": 4 * kernel,
        "in_channels": int(in_channels),
        "out_channels": int(state["out.3.weight"].shape[0]),
        "n_feat": int(n_feat),
        "n_cfeat": int(state["contextembed1.model.0.weight"].shape[1]),
        "num_train_timesteps": 500,
        "timestep_offset": 1,
    }


def check_keys_and_shapes(state: dict[str, torch.Tensor], unet: ContextUnet) -> None:
    """One error listing every missing, unexpected or mis-shaped key, against what `unet` expects from the course."""
    expected = {k: tuple(v.shape) for k, v in unet.state_dict().items() if k not in SHORTCUT_KEYS}
    problems = [f"missing {k} {shape}" for k, shape in expected.items() if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(state[k].shape)}, expected {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if problems:
        shown = "; ".join(problems[:6]) + (f"; ... ({len(problems) - 6} more)" if len(problems) > 6 else "")
        raise ValueError(
            f"Not a course ContextUnet state dict ({len(problems)} problems: {shown}). Expected the course's "
            f"{len(expected)} keys for n_feat={unet.config.n_feat}, n_cfeat={unet.config.n_cfeat}, as saved by "
            "`torch.save(nn_model.state_dict(), path)` in the course notebooks."
        )


def course_unet(state: dict[str, torch.Tensor]) -> ContextUnet:
    """A `ContextUnet` holding the course weights, with the init shortcut set to zero (see the module docstring)."""
    unet = ContextUnet(**course_unet_config(state))
    check_keys_and_shapes(state, unet)
    zeros = {k: torch.zeros_like(unet.state_dict()[k]) for k in SHORTCUT_KEYS}
    unet.load_state_dict({**state, **zeros}, strict=True)
    return unet.eval()


def convert_course_checkpoint(
    ckpt_path: str | os.PathLike, out_dir: str | os.PathLike, context: bool = False, overwrite: bool = False
) -> Path:
    """Convert a course checkpoint into a pipeline folder and return its path.

    Args:
        ckpt_path: The course's `model_trained.pth` (lab 2) or `context_model_trained.pth` (lab 3).
        out_dir: The folder to write; it must not exist or be empty unless `overwrite` is set.
        context: Write a `SpritePipeline` (sampling by class / context vector) instead of a `DDPMPipeline`.
        overwrite: Replace a non-empty `out_dir`.

    The folder holds the `ContextUnet` weights, the course's `SpriteScheduler` and a model card; it loads with
    `DDPMPipeline.from_pretrained(out_dir)` (or `SpritePipeline.from_pretrained(out_dir)`) after `import hf_sprites`.

    Example:

    ```py
    >>> from hf_sprites.course_checkpoint import convert_course_checkpoint
    >>> convert_course_checkpoint("context_model_trained.pth", "course-sprites", context=True)  # doctest: +SKIP
    PosixPath('course-sprites')
    ```
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new folder or pass --overwrite_output_dir.")
    unet = course_unet(load_course_state_dict(ckpt_path))
    with atomic_folder(out_dir) as staging:  # a previous out_dir is replaced only once the new one is complete
        _write_pipeline(staging, unet, Path(ckpt_path).name, context, local_path=out_dir)
    return out_dir


def _write_pipeline(folder: Path, unet: ContextUnet, source_name: str, context: bool, local_path: Path) -> None:
    if context:
        SpritePipeline(unet=unet, scheduler=SpriteScheduler()).save_pretrained(folder)
    else:
        from diffusers import DDPMPipeline

        DDPMPipeline(unet=unet, scheduler=SpriteScheduler()).save_pretrained(folder)
    n_cfeat = unet.config.n_cfeat
    write_model_card(
        folder,
        dataset_name="the DeepLearning.AI course's 89,400 16x16 sprites",
        hyperparameters={"converted_from": source_name, "n_feat": unet.config.n_feat, "n_cfeat": n_cfeat,
                         "init_conv_shortcut": "zero (the course draws a fresh random 1x1 conv per call)"},
        conditional=context,
        class_names=list(COURSE_CLASS_NAMES) if context and n_cfeat == len(COURSE_CLASS_NAMES) else None,
        extra_tags=("deeplearning-ai-course",),
        local_path=local_path,
    )  # fmt: skip
