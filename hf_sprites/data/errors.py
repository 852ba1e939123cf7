"""The errors that `hf_sprites.data` raises.

Every message names what is wrong and how to fix it, and every check runs before any heavy work, so a
bad flag fails in seconds instead of after an epoch.

Example:
    >>> from hf_sprites.data.errors import DataError
    >>> try:
    ...     raise DataError("label 7 is out of range for 5 classes; fix the labels or the class count")
    ... except ValueError as err:
    ...     print(type(err).__name__)
    DataError
"""


class DataError(ValueError):
    """Training data that cannot be used as given. The message says what to change."""


class HubUnreachableError(DataError):
    """The Hugging Face Hub could not be reached and the dataset is not available offline."""
