"""Errors meant for people.

Every error the toolkit raises on bad input is a ``UerError``: the command-line entry points catch it
and print its message without a traceback, so the message itself must say what was wrong, where
(file, line, key) and what to do about it.
"""


class UerError(Exception):
    """Base class of every user-facing error."""


class ConfigError(UerError):
    """A model or run configuration is malformed, inconsistent or names an unknown module."""


class DataError(UerError):
    """A corpus, vocabulary, dataset or labelled file is missing, empty or malformed."""


class CheckpointError(UerError):
    """A checkpoint is missing, corrupt or does not match the model it is loaded into."""


class OutputError(UerError):
    """An output cannot be written: no space left, a read-only place, no permission."""
