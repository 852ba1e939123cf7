"""Experiment trackers: which of accelerate's trackers a run logs to, whether they are installed, images to each.

`--report_to` (diffusers' name; `--logger` is `train_unconditional.py`'s) takes one or more of accelerate's trackers:
tensorboard (installed with hf_sprites), wandb (`pip install 'hf-sprites[trackers]'`), trackio, comet_ml, mlflow,
aim, clearml, dvclive, swanlab; `all` for every installed one, `none` for no tracking. accelerate skips a tracker
whose package is missing without a word, so `tracker_problem` turns that into an error before training starts.
Scalars go through `accelerator.log`; sample grids through `log_image`, to every tracker that takes images.
Trackers that write files write them under `output_dir/logging_dir` (wandb: `logging_dir/wandb/`).

Example:
    >>> tracker_problem(("none", "wandb"))
    "--report_to none wandb: 'none' and 'all' cannot be combined with other trackers"
    >>> tracker_problem(("tensorboard",)) is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np

# accelerate's trackers (`accelerate.utils.LoggerType`) plus "none"
Tracker = Literal["tensorboard", "wandb", "trackio", "comet_ml", "mlflow", "aim", "clearml", "dvclive", "swanlab", "all",
                  "none"]
PACKAGES = {"comet_ml": "comet-ml"}  # pip names that differ from the tracker's name
EXTRAS = {"wandb": "trackers"}  # trackers that an hf-sprites extra installs
PROJECT_NAME = "train"  # accelerate's run name: tensorboard writes logging_dir/train/, wandb's project


def installed_trackers() -> list[str]:
    """The trackers accelerate finds installed here."""
    from accelerate.tracking import get_available_trackers

    return [str(getattr(tracker, "value", tracker)) for tracker in get_available_trackers()]


def tracker_names(requested) -> list[str]:
    """The trackers to log to: the `requested` names with "all" resolved to the installed ones, [] for "none"."""
    names = list(dict.fromkeys(requested))
    if "none" in names:
        return []
    return installed_trackers() if "all" in names else names


def tracker_problem(requested) -> Optional[str]:
    """Why the `requested` trackers cannot be used (naming the fix), or None when they can."""
    names = set(requested)
    if len(names) > 1 and names & {"none", "all"}:
        return f"--report_to {' '.join(requested)}: 'none' and 'all' cannot be combined with other trackers"
    installed = installed_trackers()
    for name in tracker_names(requested):
        if name not in installed:
            package = PACKAGES.get(name, name)
            extra = f"`pip install 'hf-sprites[{EXTRAS[name]}]'` or " if name in EXTRAS else ""
            return (f"--report_to {name} needs the {package} package, which is not installed; install it with {extra}"
                    f"`pip install {package}`, or log to an installed tracker ({', '.join(installed) or 'none'})")
    return None


def init_kwargs(names: list[str], logging_dir: Path, run_name: str) -> dict:
    """Per-tracker keyword arguments for `accelerator.init_trackers`: files go under `logging_dir`."""
    kwargs = {}
    if "wandb" in names:
        kwargs["wandb"] = {"dir": str(logging_dir), "name": run_name}
    return kwargs


def log_image(accelerator, image, *, tag: str, step: int) -> None:
    """Send a PIL image (a sample grid) to every active tracker that takes images."""
    pixels = np.asarray(image.convert("RGB"))
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({tag: pixels[None]}, step=step, dataformats="NHWC")
        elif hasattr(tracker, "log_images"):
            tracker.log_images({tag: [image.convert("RGB")]}, step=step)
