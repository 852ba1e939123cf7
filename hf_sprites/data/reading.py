"""Read the images of an `ImageSource` one by one, naming the row of any image that cannot be decoded.

Example:
    >>> from hf_sprites.data import load_images
    >>> from hf_sprites.data.reading import check_images, read_image
    >>> source = load_images()
    >>> check_images(source, max_items=10)  # raises DataError naming the bad row, if any
    >>> read_image(source, 0).size
    (8, 8)
"""

from collections.abc import Iterator

from PIL import Image

from .errors import DataError
from .source import ImageSource

_BATCH = 256


def read_image(source: ImageSource, index: int) -> Image.Image:
    """Return image `index` of `source` as a loaded PIL image, or raise `DataError` naming the row."""
    if source.pixels is not None:
        return Image.fromarray(source.pixels[index])
    try:
        image = source.dataset[int(index)]["image"]
        image.load()
        return image
    except Exception as err:  # PIL and datasets raise many types for a broken image
        raise _unreadable(source, index, err) from None


def iter_images(source: ImageSource, count: int | None = None) -> Iterator[tuple[int, Image.Image]]:
    """Yield `(index, image)` for the first `count` rows (all when None), decoding in batches."""
    count = len(source) if count is None else min(count, len(source))
    if source.pixels is not None:
        yield from ((index, read_image(source, index)) for index in range(count))
        return
    for start in range(0, count, _BATCH):
        stop = min(start + _BATCH, count)
        yield from enumerate(_read_batch(source, start, stop), start)


def _read_batch(source: ImageSource, start: int, stop: int) -> list[Image.Image]:
    try:
        images = source.dataset[start:stop]["image"]
        for image in images:
            image.load()
        return images
    except Exception:  # find the broken row, so that the message can name it
        return [read_image(source, index) for index in range(start, stop)]


def check_images(source: ImageSource, max_items: int | None = None) -> None:
    """Decode every image (the first `max_items`) and raise `DataError` at the first unreadable one."""
    for _ in iter_images(source, max_items):
        pass


def _unreadable(source: ImageSource, index: int, err: Exception) -> DataError:
    return DataError(
        f"image {index} of {source.source} cannot be read ({type(err).__name__}: {err}); "
        "remove or replace that file/row and run again"
    )
