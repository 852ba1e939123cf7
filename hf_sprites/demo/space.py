# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""What `hf-sprites push --with_demo` adds to a staged upload so that the repo also runs as a Gradio Space.

- `app.py`: `hf_sprites/demo/app.py` as it is (it imports nothing from hf_sprites); run as a script, it loads the
  folder it lies in as remote code and serves the same page as `hf-sprites demo`;
- `sprite_pipeline.py` at the top, for repos saved as `DDPMPipeline` (a `SpritePipeline` repo ships it already):
  the app samples every repo through it, for the denoising frames;
- `requirements.txt`: the torch and diffusers versions the push was made with (a Space brings its own Gradio);
- the Space settings in the README's metadata: `sdk: gradio`, the installed Gradio as `sdk_version`, `app_file`.
"""

from __future__ import annotations

import os
from pathlib import Path

import diffusers
import torch
from huggingface_hub import ModelCard

from ..atomic import atomic_copy, atomic_write_text
from ..hub.remote_code import module_source
from ..pipelines import SpritePipeline
from . import app
from .serve import require_gradio

APP_FILE = "app.py"


def space_requirements() -> str:
    """`requirements.txt` for the Space: the torch and diffusers versions in use (without a local build tag)."""
    return f"torch=={torch.__version__.split('+')[0]}\ndiffusers=={diffusers.__version__}\n"


def write_space_metadata(folder: str | os.PathLike, gradio_version: str | None = None) -> Path:
    """Add the Space settings to the metadata of `folder/README.md` (the card `push` rendered), keeping the rest."""
    readme = Path(folder) / "README.md"
    card = ModelCard.load(readme)
    card.data.sdk, card.data.app_file = "gradio", APP_FILE
    card.data.sdk_version = gradio_version or require_gradio()
    return atomic_write_text(readme, str(card))


def write_space_files(folder: str | os.PathLike) -> list[Path]:
    """Add `app.py`, `requirements.txt`, `sprite_pipeline.py` and the Space settings to a staged pipeline folder.

    Needs Gradio installed (its version becomes the Space's `sdk_version`); checked before anything is written.
    """
    gradio_version = require_gradio()
    folder = Path(folder)
    written = [atomic_copy(app.__file__, folder / APP_FILE)]
    written.append(atomic_write_text(folder / "requirements.txt", space_requirements()))
    if not (folder / "sprite_pipeline.py").is_file():
        _, source = module_source(SpritePipeline)
        written.append(atomic_write_text(folder / "sprite_pipeline.py", source))
    written.append(write_space_metadata(folder, gradio_version))
    return written
