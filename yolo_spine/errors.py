"""Errors that the command line turns into one clear sentence and a non-zero exit code.

Library code raises :class:`UserError` (or a subclass) for anything the user can fix: a missing file, an
unknown class name, an output that already exists. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, options or environment, reported as one sentence.

    Attributes:
        exit_code: Process exit code the CLI uses for this error.
    """

    exit_code: int = 2


class DataError(UserError):
    """Input data that cannot be used as given (unreadable file, bad geometry, unknown labels)."""


class OutputExistsError(UserError):
    """The output path exists and ``--overwrite`` was not given."""


class MissingDependencyError(UserError):
    """An optional dependency needed for this command is not installed."""

    exit_code = 3


class OfflineError(UserError):
    """A resource that needs the network was asked for while the network is not reachable."""

    exit_code = 4
