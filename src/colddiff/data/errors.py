"""The two ways reading training images fails: the images are not there, or a file is damaged."""

from __future__ import annotations

__all__ = ["DatasetCorruptError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put its files."""


class DatasetCorruptError(OSError):
    """A dataset file is on disk but damaged; the message names it and says what to do."""
