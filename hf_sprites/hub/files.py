# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""Atomic file writes for the hub helpers (see `hf_sprites.atomic`)."""

from ..atomic import atomic_copy, atomic_write_text, temporary_sibling

__all__ = ["atomic_copy", "atomic_write_text", "temporary_sibling"]
