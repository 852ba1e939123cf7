"""Sample a grid or a denoising GIF from a pipeline folder or Hub repo: `python examples/sample.py FOLDER [flags]`.

The same as `hf-sprites sample` (see `--help`), e.g.
`python examples/sample.py outputs/default --class_label 0 1 2 3 4 5 6 7 8 9 --guidance_scale 3 --output digits.png`.
"""

import sys

from hf_sprites.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
