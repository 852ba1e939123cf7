"""Training for hf_sprites: `accelerate launch examples/train.py [flags]` or `hf-sprites train [flags]`.

Read in this order (the order of diffusers' `train_unconditional.py`): `config.py` (the `TrainConfig` dataclass
is the command line, `presets/*.yaml`, every rule on the settings), `builders.py` (accelerator, data, model,
scheduler, optimizer, LR schedule, EMA), `step.py` (loss, context dropout, the per-batch update), `loop.py` (the
run: checks, resume, the loop, the time budget, logging) and `output.py` (checkpoints, previews,
trackers, the pipeline folder, card, push). Beside them: `plan.py` (what a run does with its machine: CPU threads,
precision and the steps that fit a time budget), `folder.py` (the output folder one run owns at a time: its lock and
what a run may write over), `memory.py` (whether the run fits the machine's memory, checked before the model is
built) and `health.py` (divergence: a NaN or infinite loss or weight stops the run before a save).
The data and its batching live in `hf_sprites.data`.

Example:
    >>> from hf_sprites.training import main
    >>> main(["--max_train_steps", "20", "--output_dir", "outputs/quick"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Optional

from .config import TrainConfig, TrainConfigError, check_config, parse_train_args


def main(argv: Optional[list[str]] = None):
    """Parse `argv` (a list of flags; None means no flags) and train. Returns the output folder."""
    cfg = parse_train_args(argv)
    check_config(cfg)  # before the heavy imports: a bad flag fails in a moment
    from .loop import train

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return train(cfg)


__all__ = ["TrainConfig", "TrainConfigError", "main", "parse_train_args"]
