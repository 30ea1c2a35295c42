"""The project's own exception types.

Nothing below the CLI prints or exits: it raises one of these, and ``flamekit.cli``
turns it into one line on stderr and the exit code carried here.
"""

from __future__ import annotations


class FlamekitError(Exception):
    """Base of every error the CLI reports as one line. ``exit_code`` picks the status."""

    exit_code = 1


class UsageError(FlamekitError):
    """Bad options or arguments: exit status 2."""

    exit_code = 2


class TraceError(FlamekitError):
    """A file that is not a readable FKT trace (missing, not FKT, corrupt, empty): exit 2."""

    exit_code = 2


class OutputError(FlamekitError):
    """An output path that cannot be written: exit 1 (a runtime failure, not bad usage)."""

    exit_code = 1


class TargetError(FlamekitError):
    """The target process cannot be profiled (gone, not CPython, no permission): exit 1."""

    exit_code = 1
