# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Load any pipeline folder or Hub repo with hf_sprites' own classes, running none of the repository's code.

diffusers needs `trust_remote_code=True` for a repository in the remote-code layout even when hf_sprites is installed.
`load_pipeline` reads `model_index.json` itself and builds every component from the installed hf_sprites (or
diffusers) class of the same name, so a package user loads a shared model without executing downloaded code.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import diffusers
from diffusers import DiffusionPipeline, ModelMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME
from huggingface_hub import snapshot_download

from .card_data import is_repo_id
from .remote_code import is_library_entry, package_class


def resolve_folder(path_or_repo: str | os.PathLike, revision: str | None = None, token: str | None = None) -> Path:
    """A local pipeline folder, or the snapshot of a Hub repo (from the cache when `HF_HUB_OFFLINE=1`)."""
    path, text = Path(path_or_repo), str(path_or_repo)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{path} has no model_index.json, so it is not a pipeline folder. Pass the folder that "
                "`save_pretrained` (or hf-sprites train) wrote, or a Hub repo id such as user/model."
            )
        return path
    if path.exists() or text.startswith((".", "/", "~")) or not is_repo_id(text):
        raise FileNotFoundError(f"{text} is neither a pipeline folder nor a Hub repo id (user/model); check the path.")
    try:
        return Path(snapshot_download(text, revision=revision, token=token))
    except OSError as err:  # huggingface_hub's HTTP, offline and cache-miss errors are all OSErrors
        raise FileNotFoundError(
            f"There is no folder {text} here, and the Hub repo {text} could not be fetched ({type(err).__name__}). "
            "Check the path or repo id and your network; offline, set HF_HUB_OFFLINE=1 to use a cached download."
        ) from err


def component_class(name: str, entry: list) -> type:
    """The class to load component `name` with, from its `[library, class_name]` entry in `model_index.json`."""
    library, class_name = entry
    if is_library_entry(library):
        module = importlib.import_module(library) if library in ("diffusers", "transformers") else diffusers
        if hasattr(module, class_name):
            return getattr(module, class_name)
    return package_class(class_name, f"Component {name!r} ({library}.{class_name})")


def pipeline_class(class_name: str | list) -> type:
    """diffusers' or hf_sprites' pipeline class named by `_class_name` (a string, or `[file, class]`)."""
    name = class_name[-1] if isinstance(class_name, list) else class_name
    return getattr(diffusers, name, None) or package_class(name, f"Pipeline {name!r}")


def load_pipeline(
    path_or_repo: str | os.PathLike, revision: str | None = None, token: str | None = None
) -> DiffusionPipeline:
    """Load a pipeline saved or pushed by hf_sprites (either layout) or a stock diffusers pipeline.

    Args:
        path_or_repo: A local pipeline folder or a Hub repo id (`user/model`).
        revision: Branch, tag or commit of a Hub repo.
        token: Hub token for private repos (the cached login is used otherwise).

    Example:

    ```py
    >>> import torch
    >>> from hf_sprites.hub import load_pipeline
    >>> pipe = load_pipeline("user/sprites-context")  # doctest: +SKIP
    >>> images = pipe(class_labels=[0, 1, 2, 3], generator=torch.manual_seed(0)).images  # doctest: +SKIP
    ```
    """
    folder = resolve_folder(path_or_repo, revision=revision, token=token)
    index = read_index(folder)
    components = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list):
            continue
        if entry[0] is None:
            components[name] = None
            continue
        cls = component_class(name, entry)
        if issubclass(cls, ModelMixin):
            check_weights(folder / name)
        components[name] = cls.from_pretrained(folder, subfolder=name)
    return pipeline_class(index["_class_name"])(**components)


def read_index(folder: Path) -> dict:
    """`model_index.json` of a pipeline folder, or a ValueError that names the file when it is not valid JSON."""
    path = folder / "model_index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it, or re-save the pipeline with "
                         "`pipeline.save_pretrained(folder)`") from None
    if not isinstance(index, dict) or "_class_name" not in index:
        raise ValueError(f"{path} has no _class_name, so it does not describe a pipeline; restore it or re-save the "
                         "pipeline with `pipeline.save_pretrained(folder)`")
    return index


def check_weights(subfolder: Path) -> None:
    """A model component folder must hold its weights (diffusers' own message names only the legacy .bin file)."""
    names = [name + suffix for name in (SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME) for suffix in ("", ".index.json")]
    if subfolder.is_dir() and not any((subfolder / name).is_file() for name in names):
        raise FileNotFoundError(f"{subfolder / SAFETENSORS_WEIGHTS_NAME} is missing, so the pipeline folder is "
                                "incomplete; copy the weights file back or re-save the pipeline")
