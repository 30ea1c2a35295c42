"""flamekit: a sampling profiler toolkit for CPython on Linux.

Recording (``flamekit.record``) and analysis (``flamekit.convert``, ``flamekit.diffing``)
are separate stages joined by an FKT trace file (``flamekit.trace``). Traces are opened
from Python with :func:`open` (:mod:`flamekit.api`).

``import flamekit`` loads nothing else: the API, the trace reader and the converters are
imported on first use, and nothing offline ever imports the recorder.
"""

from __future__ import annotations

# typing's TYPE_CHECKING without importing typing (a few ms): type checkers read this
# name as theirs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Any

    from flamekit.api import Profile, Ranked, Recording, SampleRow
    from flamekit.errors import FlamekitError, OutputError, TraceError, UsageError

__version__ = "0.1.0"

__all__ = [
    "FlamekitError",
    "OutputError",
    "Profile",
    "Ranked",
    "Recording",
    "SampleRow",
    "TraceError",
    "UsageError",
    "__version__",
    "open",
]

#: Public names imported on first use, by the module that defines them.
_API = ("Profile", "Ranked", "Recording", "SampleRow")
_ERRORS = ("FlamekitError", "OutputError", "TraceError", "UsageError")


def open(path: str | os.PathLike[str]) -> Recording:
    """Open an FKT trace for analysis (see :func:`flamekit.api.open`)."""
    from flamekit.api import open as open_trace

    return open_trace(path)


def __getattr__(name: str) -> Any:
    if name in _API:
        from flamekit import api

        return getattr(api, name)
    if name in _ERRORS:
        from flamekit import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'flamekit' has no attribute {name!r}")
