# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Push a pipeline folder to the Hub: validate it, refresh its card, upload it in the remote-code layout.

The token comes from the argument, `HF_TOKEN` or the cached login (`hf auth login`). It is handed to `HfApi` only;
it is never logged, and the upload is refused if it appears in any file about to be uploaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from huggingface_hub import HfApi, get_token
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .card import refresh_model_card
from .card_data import check_license
from .load import load_pipeline
from .remote_code import write_remote_code_layout

logger = logging.getLogger(__name__)

#: Training leftovers that are not part of a shared model (accelerate checkpoints, tensorboard logs, temp files).
DEFAULT_IGNORE = ("checkpoint-*", "logs", "runs", ".*", "*.tmp", "__pycache__")


def resolve_token(token: str | None = None) -> str:
    """The Hub token to push with: `token`, else `HF_TOKEN`, else the cached login; one clear error if none."""
    for candidate in (token, os.environ.get("HF_TOKEN"), get_token()):
        if candidate and candidate.strip():
            return candidate.strip()
    raise ValueError(
        "No Hugging Face token found. Pass one (--hub_token / token=...), set the HF_TOKEN environment variable, or "
        "log in once with `hf auth login`. Create a token with write access at https://huggingface.co/settings/tokens."
    )


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid Hub model id, else a ValueError that shows the expected form."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(
            f"{repo_id!r} is not a valid Hub repo id ({err}). Use 'username/model-name' with letters, digits, "
            "'-', '_' or '.' only."
        ) from None
    if not repo_id or repo_id.endswith("/"):
        raise ValueError(f"{repo_id!r} is not a valid Hub repo id. Use 'username/model-name'.")
    return repo_id


def check_folder_loads(folder: Path) -> str:
    """Load `folder` with hf_sprites' classes (no remote code); return its pipeline class name or explain the failure."""
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a pipeline folder (no model_index.json). Push the output_dir of `hf-sprites train` or a "
            "folder written by `pipeline.save_pretrained(...)`."
        )
    try:
        pipeline = load_pipeline(folder)
    except Exception as err:  # any failure to load means the folder must not be uploaded
        raise ValueError(
            f"{folder} does not load as a pipeline, so it was not pushed: {type(err).__name__}: {err}. Re-save it with "
            "`pipeline.save_pretrained(folder)` (or re-run training) and push again."
        ) from err
    return type(pipeline).__name__


def stage_folder(folder: Path, staging: Path, repo_id: str, ignore: Iterable[str] = DEFAULT_IGNORE,
                 license: str | None = None) -> Path:
    """Copy `folder` to `staging` without training leftovers, render its card for `repo_id` (with `license` when
    given), use the remote-code layout."""
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*ignore))
    refresh_model_card(staging, repo_id=repo_id, license=license)
    write_remote_code_layout(staging)
    return staging


def assert_no_secret(folder: Path, secret: str) -> None:
    """Refuse to upload when `secret` (the token) appears in any file under `folder`."""
    needle = secret.encode()
    for path in folder.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            raise RuntimeError(
                f"Refusing to upload: {path.relative_to(folder)} contains your Hub token. Remove it from that file "
                "(and rotate the token if the file was shared) before pushing."
            )


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    api: HfApi | None = None,
    ignore: Iterable[str] = DEFAULT_IGNORE,
    with_demo: bool = False,
    license: str | None = None,
) -> Any:
    """Upload a pipeline folder to the Hub model repo `repo_id` and return the commit info.

    Everything is checked before anything is created on the Hub: the repo id, the token, and that the folder loads.
    The upload is a staged copy of the folder with a model card rendered for `repo_id` and the remote-code layout
    (so `DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)` works without hf_sprites); the folder
    itself is not changed.

    Args:
        folder: A pipeline folder (output_dir of training, or a `save_pretrained` folder).
        repo_id: `username/model-name` (or `model-name` in your namespace); created if missing.
        token: Hub token with write access; defaults to `HF_TOKEN`, then the cached login.
        private: Create the repo as private (an existing repo keeps its visibility).
        revision: Branch to push to; created from main when missing.
        commit_message: Defaults to "Upload <pipeline class> with hf_sprites".
        api: An `HfApi` to use instead of `HfApi(token=token)`.
        ignore: Glob patterns of files and folders that are not uploaded.
        with_demo: Also upload the demo app (`app.py`, `requirements.txt`, Space settings in the card) so the repo
            runs as a Gradio Space; see `hf_sprites.demo.space`. Needs Gradio installed.
        license: Hub license id for the card (default: the one the card was written with, else apache-2.0).

    Example:

    ```py
    >>> from hf_sprites.hub import push_folder
    >>> push_folder("outputs/sprites", "me/sprites-ddpm", private=True)  # doctest: +SKIP
    ```
    """
    folder = Path(folder)
    check_repo_id(repo_id)
    if license is not None:
        check_license(license)
    token = resolve_token(token)
    pipeline_name = check_folder_loads(folder)
    api = api if api is not None else HfApi(token=token)
    message = commit_message or f"Upload {pipeline_name} with hf_sprites"
    with tempfile.TemporaryDirectory(prefix="hf_sprites_push_") as tmp:
        staging = stage_folder(folder, Path(tmp) / "upload", repo_id, ignore, license)
        if with_demo:
            from ..demo.space import write_space_files  # local import: the demo is optional

            write_space_files(staging)
        assert_no_secret(staging, token)
        logger.info("Pushing %s to %s (revision %s, private=%s).", folder, repo_id, revision or "main", private)
        created = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        full_id = getattr(created, "repo_id", None) or repo_id  # "name" becomes "namespace/name"
        if full_id != repo_id:
            refresh_model_card(staging, repo_id=full_id)
            if with_demo:
                write_space_files(staging)  # the card was rendered again: add the Space settings back
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        return api.upload_folder(
            folder_path=staging, repo_id=repo_id, repo_type="model", revision=revision, commit_message=message
        )
