"""The FKT trace: records, a streaming writer, a streaming reader, and an in-memory model.

This package knows records, not processes and not output formats; the recorder and the
converters both depend on it and it depends on neither.
"""

from flamekit.trace.model import Trace, load
from flamekit.trace.reader import TraceReader
from flamekit.trace.records import Code, End, Header, Process, Samples, Stack, Thread
from flamekit.trace.writer import TraceWriter

__all__ = [
    "Trace",
    "load",
    "TraceReader",
    "TraceWriter",
    "Header",
    "Thread",
    "Code",
    "Stack",
    "Samples",
    "Process",
    "End",
]
