# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Sharing pipeline folders: model cards, the remote-code layout, loading without remote code, pushing to the Hub."""

from .card import record_evaluation, refresh_model_card, write_model_card
from .load import load_pipeline
from .push import push_folder, resolve_token
from .remote_code import write_remote_code_layout

__all__ = [
    "load_pipeline",
    "push_folder",
    "record_evaluation",
    "refresh_model_card",
    "resolve_token",
    "write_model_card",
    "write_remote_code_layout",
]
