"""The exception types search_lab raises; entry points turn them into one line, not a traceback."""

from __future__ import annotations


class SearchLabError(Exception):
    """Base class: a problem the user can fix, reported as one clear line."""


class ImageLoadError(SearchLabError):
    """An image file is missing, corrupt, truncated, not an image, or too large."""


class DatasetError(SearchLabError):
    """The dataset root is missing, empty, or holds no usable queries."""


class ConfigError(SearchLabError, ValueError):
    """A configuration value is unknown or out of range."""


class IndexMismatchError(SearchLabError):
    """A saved index does not fit the query (feature, dimension, metric) or is incomplete."""


class UnreadableFileError(SearchLabError, ValueError):
    """A file read back from disk is not what it should be: not a regular file, too large,
    too deeply nested, not text or JSON, or of the wrong shape (see :mod:`search_lab.core.readers`).

    A ValueError too, so a reader that skips bad files (``except (OSError, ValueError)``)
    skips these as well.
    """
