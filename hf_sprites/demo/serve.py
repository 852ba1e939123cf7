# Copyright 2026 The hf_sprites authors. Licensed under the Apache License, Version 2.0.
"""`hf-sprites demo`: check the setup, load a folder or repo with hf_sprites' own classes, serve the app on it.

Every check (Gradio installed, the port free, the folder a pipeline) runs before a model is loaded or a server starts.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..evaluation.sampling import as_sprite_pipeline
from ..hub.load import load_pipeline, resolve_folder
from .app import SpriteDemo, read_class_names

INSTALL_HINT = 'pip install -c constraints.txt -e ".[demo]" in a checkout, or pip install "hf-sprites[demo]"'


def require_gradio() -> str:
    """Gradio's version, or an ImportError that says how to install the demo extra."""
    try:
        import gradio  # noqa: PLC0415
    except ImportError:
        raise ImportError(f"The demo needs Gradio, which is not installed. Install the demo extra: {INSTALL_HINT}.") from None
    return gradio.__version__


def check_port_free(host: str, port: int) -> None:
    """Raise an OSError naming the fix when nothing can listen on `host:port` (for example, the port is in use).

    ```py
    >>> import socket
    >>> with socket.socket() as taken:
    ...     taken.bind(("127.0.0.1", 0)); taken.listen()
    ...     check_port_free("127.0.0.1", taken.getsockname()[1])
    Traceback (most recent call last):
    OSError: Port ... on 127.0.0.1 is not free (...). Stop what uses it, or pass another port: --port ...

    ```
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise OSError(
                f"Port {port} on {host} is not free ({err.strerror}). Stop what uses it, or pass another port: "
                f"--port {port + 1}."
            ) from None


def build_demo(model: str | os.PathLike, revision: str | None = None) -> SpriteDemo:
    """The app over a pipeline folder or Hub repo, loaded with hf_sprites' classes (no remote code), on the CPU."""
    folder = resolve_folder(model, revision=revision)
    pipe, conditional = as_sprite_pipeline(load_pipeline(folder), device="cpu")
    return SpriteDemo(pipe, conditional, read_class_names(folder), title=f"hf_sprites demo: {Path(str(model)).name}")


def serve(model: str | os.PathLike, host: str = "127.0.0.1", port: int = 7860, revision: str | None = None, **launch_kwargs):
    """Check the setup, then serve the demo of `model` at `http://host:port` (blocks until Ctrl+C unless told not to).

    Example:

    ```py
    >>> from hf_sprites.demo.serve import serve
    >>> serve("outputs/default", port=7860)  # doctest: +SKIP
    ```
    """
    require_gradio()
    check_port_free(host, port)
    return build_demo(model, revision=revision).launch(host, port, **launch_kwargs)
