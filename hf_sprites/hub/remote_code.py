# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The remote-code layout: a pipeline folder that diffusers loads without hf_sprites installed.

A folder saved by hf_sprites names its classes by package module (`"unet": ["hf_sprites.models.context_unet",
"ContextUnet"]`), which loads after `import hf_sprites` but is rejected by diffusers when downloaded from the Hub. The
remote-code layout instead ships each hf_sprites class's source file next to its weights and names that file:

    model_index.json        "_class_name": ["sprite_pipeline", "SpritePipeline"]   (a stock pipeline stays a string)
                            "unet": ["context_unet", "ContextUnet"], "scheduler": ["sprite", "SpriteScheduler"]
    sprite_pipeline.py      hf_sprites/pipelines/sprite_pipeline.py
    unet/context_unet.py    hf_sprites/models/context_unet.py
    scheduler/sprite.py     hf_sprites/schedulers/sprite.py

`DiffusionPipeline.from_pretrained(path_or_repo, trust_remote_code=True)` loads it (and `DDPMPipeline` for
unconditional folders). hf_sprites' model, scheduler and pipeline modules import nothing from hf_sprites, which is
what makes a single copied file enough; `write_remote_code_layout` checks it.

Entries that name a class through any other module path (for example the `diffusers_modules.local.context_unet`
entries diffusers writes when a remote-loaded pipeline is saved again) are mapped back to hf_sprites' class by name.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

import diffusers
from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES

from ..atomic import atomic_write_text

#: hf_sprites' models, schedulers and pipelines (the classes that travel as remote code): class name -> its module.
#: A new model, scheduler or pipeline class gets a row here.
PACKAGE_CLASS_MODULES = {
    "ContextUnet": "hf_sprites.models.context_unet",
    "BasicUNet": "hf_sprites.models.basic_unet",
    "SpriteScheduler": "hf_sprites.schedulers.sprite",
    "CorruptScheduler": "hf_sprites.schedulers.corrupt",
    "SpritePipeline": "hf_sprites.pipelines.sprite_pipeline",
}
_PACKAGE_IMPORT = re.compile(r"^\s*(from\s+(hf_sprites\b|\.)|import\s+hf_sprites\b)", re.MULTILINE)


def is_library_entry(library: str | None) -> bool:
    """True for entries diffusers resolves itself (`"diffusers"`, `"transformers"`, a pipeline module, or None)."""
    return library is None or library in LOADABLE_CLASSES or hasattr(diffusers.pipelines, library)


def package_class(class_name: str, declared_as: str = "") -> type:
    """hf_sprites' class called `class_name` (see `PACKAGE_CLASS_MODULES`), or one clear error naming what loads.

    ```py
    >>> package_class("SpriteScheduler").__module__
    'hf_sprites.schedulers.sprite'

    ```
    """
    if class_name not in PACKAGE_CLASS_MODULES:
        raise ValueError(
            f"{declared_as or class_name} is neither a diffusers class nor one of hf_sprites' classes "
            f"({', '.join(sorted(PACKAGE_CLASS_MODULES))}). Save the pipeline with hf_sprites or diffusers components."
        )
    return getattr(importlib.import_module(PACKAGE_CLASS_MODULES[class_name]), class_name)


def module_source(cls: type) -> tuple[str, str]:
    """(`module_stem`, source text) of the file that defines `cls`, checked to be self-contained."""
    path = Path(inspect.getsourcefile(cls))
    source = path.read_text(encoding="utf-8")
    offending = _PACKAGE_IMPORT.search(source)
    if offending:
        raise RuntimeError(
            f"{path} imports `{offending.group(0).strip()}`, so it cannot travel as a single remote-code file. "
            "hf_sprites' models/, schedulers/ and pipelines/ must import nothing from hf_sprites."
        )
    return path.stem, source


def code_file_names(pipeline_class: str, unet_class: str, scheduler_class: str) -> list[str]:
    """Repository paths of the code files the remote-code layout adds for these classes (stock classes add none)."""
    names = []
    for folder, name in (("", pipeline_class), ("unet/", unet_class), ("scheduler/", scheduler_class)):
        if name in PACKAGE_CLASS_MODULES:
            names.append(f"{folder}{PACKAGE_CLASS_MODULES[name].rpartition('.')[2]}.py")
    return names


def write_remote_code_layout(folder: str | os.PathLike) -> dict[str, Any]:
    """Turn the pipeline folder `folder` into the remote-code layout, in place, and return its new model index.

    Only hf_sprites classes change; stock diffusers components and pipelines stay as they are. Re-running it (or
    running it on a folder that is already in the layout) refreshes the code files from the installed hf_sprites.

    Example:

    ```py
    >>> import shutil
    >>> from hf_sprites.hub.remote_code import write_remote_code_layout
    >>> shutil.copytree("outputs/sprites", "staging")  # doctest: +SKIP
    >>> write_remote_code_layout("staging")["unet"]  # doctest: +SKIP
    ['context_unet', 'ContextUnet']
    ```
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{folder} has no model_index.json; pass a folder written by `save_pretrained`.")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    writes: dict[Path, str] = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or is_library_entry(entry[0]):
            continue
        stem, source = module_source(package_class(entry[1], f"Component {name!r} ({entry[0]}.{entry[1]})"))
        writes[folder / name / f"{stem}.py"] = source
        index[name] = [stem, entry[1]]
    pipeline_name = index["_class_name"][-1] if isinstance(index["_class_name"], list) else index["_class_name"]
    if not hasattr(diffusers, pipeline_name):
        stem, source = module_source(package_class(pipeline_name, f"Pipeline {pipeline_name!r}"))
        writes[folder / f"{stem}.py"] = source
        index["_class_name"] = [stem, pipeline_name]
    for path, text in writes.items():
        atomic_write_text(path, text)
    atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index

