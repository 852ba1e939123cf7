"""The embedded default dataset: scikit-learn's bundled 8x8 handwritten digits.

`sklearn.datasets.load_digits` ships 1,797 real 8x8 greyscale digits (UCI "optical recognition of
handwritten digits", 16 grey levels) inside the scikit-learn wheel, so training works on a fresh,
offline machine without touching the network or `../shared`. Grey levels 0..16 are scaled to
0..255 (ink is bright on a black background, like MNIST); labels are the digits 0..9.

Example:
    >>> from hf_sprites.data.embedded import load_digits_source
    >>> source = load_digits_source()
    >>> source.pixels.shape, source.pixels.max(), source.num_classes
    ((1797, 8, 8), np.uint8(255), 10)
"""

import numpy as np

from .errors import DataError
from .source import ImageSource

DIGITS_DESCRIPTION = "scikit-learn load_digits (1797 handwritten 8x8 digits, embedded default)"


def load_digits_source(split: str = "train") -> ImageSource:
    """Return scikit-learn's bundled digits as an `ImageSource` (`uint8 (1797, 8, 8)`, labels 0..9)."""
    if split != "train":
        raise DataError(f"the embedded digits have a single split 'train', not '{split}'; use split 'train'")
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(digit) for digit in digits.target_names]
    return ImageSource.from_arrays(pixels, digits.target, class_names=names, source=DIGITS_DESCRIPTION)
