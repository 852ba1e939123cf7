"""Train a diffusion model: `accelerate launch examples/train.py [flags]` (see `--help`).

With no flags it trains the embedded default (scikit-learn digits, conditional ContextUnet) in a few CPU minutes.
"""

import os
import sys

# On shared or busy CPUs, OpenMP threads that spin while they wait take the cores the working threads need
# (a loaded 2-core VM ran ContextUnet steps 7x slower). Must be set before torch loads; export it to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hf_sprites.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))  # bad input: one line and exit status 1, as `hf-sprites train`
