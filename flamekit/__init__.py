"""flamekit: a sampling profiler toolkit for CPython on Linux.

Recording (``flamekit.record``) and analysis (``flamekit.convert``, ``flamekit.diff``)
are separate stages joined by an FKT trace file (``flamekit.trace``).
"""

__version__ = "0.1.0"
