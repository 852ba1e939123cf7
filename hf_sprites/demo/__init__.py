# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""The demo: a Gradio app over any pipeline folder or repo (`hf-sprites demo`), and its copy for a Space (`--with_demo`).

Gradio comes with the optional extra: `pip install "hf_sprites[demo]"`. Nothing here imports it until a page is built.
"""

from .app import MAX_IMAGE_STEPS, Request, SpriteDemo, read_class_names

__all__ = ["MAX_IMAGE_STEPS", "Request", "SpriteDemo", "read_class_names"]
