"""Training for hf_sprites: `accelerate launch examples/train.py [flags]` or `hf-sprites train [flags]`.

Files: `config.py` (flags and presets), `builders.py` (model and scheduler), `step.py` (the per-batch step),
`optim.py` (optimizer, LR schedule, EMA), `checkpoints.py`,
`previews.py` (sample grids, GIF), `output.py` (pipeline folder, card, push), `validate.py` (input checks),
`loop.py` (the run).

Example:
    >>> from hf_sprites.training import main
    >>> main(["--max_train_steps", "20", "--output_dir", "outputs/quick"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Optional

from .config import TrainConfig, parse_train_args


def main(argv: Optional[list[str]] = None):
    """Parse `argv` (a list of flags; None means no flags) and train. Returns the output folder."""
    from .loop import train

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    return train(parse_train_args(argv))


__all__ = ["TrainConfig", "main", "parse_train_args"]
