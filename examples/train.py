"""Train a diffusion model: `accelerate launch examples/train.py [flags]` (see `--help`).

With no flags it trains the embedded default (scikit-learn digits, conditional ContextUnet) in a few CPU minutes.
"""

import sys

from hf_sprites.training import main

if __name__ == "__main__":
    main(sys.argv[1:])
