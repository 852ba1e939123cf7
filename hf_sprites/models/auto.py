# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Load a saved unet by the class its config names.

`UNet2DModel.from_pretrained(<a ContextUnet folder>)` does not fail: it ignores the unknown config keys and builds a
randomly initialised default UNet2DModel. `load_unet` reads `_class_name` first and picks the right class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffusers import UNet2DModel
from huggingface_hub import hf_hub_download

from .basic_unet import BasicUNet
from .context_unet import ContextUnet

UNET_CLASSES = {cls.__name__: cls for cls in (ContextUnet, BasicUNet, UNet2DModel)}


def _read_config(path_or_repo: str | os.PathLike, subfolder: str | None, **hub_kwargs) -> dict:
    folder = Path(path_or_repo) / (subfolder or "")
    looks_local = Path(path_or_repo).exists() or Path(path_or_repo).is_absolute() or str(path_or_repo).startswith(".")
    if looks_local:
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"no unet config at {config_file}. Point to a pipeline folder (with subfolder='unet') or a unet folder "
                "written by save_pretrained."
            )
    else:
        config_file = hf_hub_download(str(path_or_repo), "config.json", subfolder=subfolder, **hub_kwargs)
    return json.loads(Path(config_file).read_text())


def load_unet(path_or_repo: str | os.PathLike, subfolder: str | None = "unet", **kwargs):
    """Load the unet saved in `path_or_repo/subfolder` with the class named in its config.

    ```py
    >>> from hf_sprites.models import load_unet
    >>> unet = load_unet("my-sprite-pipeline")  # ContextUnet, BasicUNet or UNet2DModel  # doctest: +SKIP

    ```
    """
    hub_kwargs = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    name = _read_config(path_or_repo, subfolder, **hub_kwargs).get("_class_name")
    if name not in UNET_CLASSES:
        raise ValueError(f"unknown unet class {name!r} in the config; hf_sprites loads {sorted(UNET_CLASSES)}.")
    return UNET_CLASSES[name].from_pretrained(path_or_repo, subfolder=subfolder, **kwargs)
