"""The exceptions minift raises for bad input.

Every error a user can cause (a missing file, a malformed line, a config that cannot work, an adapter that does
not fit the model) is a `MiniftError`, so the command line can print its message on one line and exit non-zero
instead of showing a traceback. Each subclass also derives from the built-in exception a Python user would
expect (`ValueError`, `FileNotFoundError`), so `except ValueError` keeps working.
"""


class MiniftError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ConfigError(MiniftError, ValueError):
    """A configuration or argument that cannot work (e.g. d_model not divisible by n_head)."""


class InputError(MiniftError, ValueError):
    """Bad input data: token ids out of range, a sequence longer than the context, a malformed line."""


class MissingFileError(MiniftError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class CheckpointError(MiniftError, ValueError):
    """A checkpoint or adapter file that is corrupt or does not match the model."""


class OutputExistsError(MiniftError, FileExistsError):
    """An output directory already holds results; pass --force (force=True) to overwrite it."""


class OutputError(MiniftError, OSError):
    """An output location that cannot be written: read-only, not a directory, or a full disk."""
