"""A live snapshot (``flamekit dump``) symbolized: names, files and lines per frame.

The recorder's snapshot is raw (code addresses, instruction offsets, CODE records), as a
trace is; this turns it into what a person reads, with the same line tables and the same
symbolizer as ``convert``, so a dump and a recording of the same instant agree. Frames'
variables, where the snapshot has them, become short bounded reprs
(:mod:`flamekit.analysis.value_repr`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flamekit.analysis.filenames import shown_names
from flamekit.analysis.native import eval_frames, merge
from flamekit.analysis.value_repr import Bounds, short_repr
from flamekit.symbolize import Symbolizer
from flamekit.symbolize.native import NativeName, NativeSymbolizer
from flamekit.trace import records as R

#: The name of a frame whose code object could not be read.
UNREADABLE = "<unreadable code>"


class RawLocal(Protocol):
    """One variable of a frame (``flamekit.record.frame_locals.Local``)."""

    @property
    def name(self) -> str: ...
    @property
    def arg(self) -> bool: ...
    @property
    def value(self) -> object: ...


class RawThread(Protocol):
    """What :func:`symbolize` needs of a thread (``flamekit.record.snapshot`` gives it)."""

    @property
    def thread_id(self) -> int: ...
    @property
    def native_tid(self) -> int | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def holds_gil(self) -> bool: ...
    @property
    def idle(self) -> bool: ...
    @property
    def frames(self) -> Sequence[tuple[int, int]]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def locals(self) -> Sequence[Sequence[RawLocal] | None]: ...

    @property
    def native(self) -> Sequence[int] | None: ...

    @property
    def native_cut(self) -> bool: ...

    @property
    def eval_ends(self) -> Sequence[int]: ...


@dataclass
class DumpLocal:
    name: str
    repr: str  #: short and bounded (value_repr.short_repr)
    arg: bool  #: a parameter of the function


@dataclass
class DumpFrame:
    function: str  #: qualified name where the version has one
    file: str
    line: int | None
    #: its bound variables, parameters first; None: not asked for, or not readable
    locals: list[DumpLocal] | None = None
    #: a native (C) frame of ``dump --native``: ``file`` is its object's path
    native: bool = False
    #: with --native-lines, a native frame's source file (``line`` its line), if known
    source: str | None = None


@dataclass
class DumpThread:
    thread_id: int  #: threading.get_ident()
    native_tid: int | None
    name: str | None
    holds_gil: bool
    idle: bool
    frames: list[DumpFrame] = field(default_factory=list)  #: innermost first
    error: str | None = None


@dataclass(frozen=True)
class NativeContext:
    """What naming a snapshot's native frames needs: its process, its interpreter's
    version (which functions evaluate frames), and its objects' names."""

    pid: int
    python_version: str
    symbolizer: NativeSymbolizer


def _merged(
    t: RawThread, native: NativeContext | None
) -> list[tuple[int, int] | NativeName] | None:
    """The thread's Python and native frames merged, root first; None without native."""
    if native is None or t.native is None:
        return None
    names = [native.symbolizer.name(native.pid, ip, k > 0) for k, ip in enumerate(t.native)]
    evals, inlined = eval_frames(native.python_version)
    return merge(tuple(t.frames), names, evals, inlined, t.eval_ends)


def symbolize(
    threads: Sequence[RawThread],
    codes: Mapping[int, R.Code | None],
    bounds: Bounds | None = None,
    *,
    cmdline: Sequence[str] = (),
    full_filenames: bool = False,
    native: NativeContext | None = None,
) -> list[DumpThread]:
    """Each thread with its frames named: function, file and line, innermost first; with
    ``bounds``, each frame's variables as reprs within them.

    Files are shown relative to their import roots, found as a trace's are
    (:mod:`flamekit.analysis.filenames`), with the process's ``cmdline``; whole with
    ``full_filenames``. With ``native``, the threads' native stacks are named and merged
    with their Python frames as a trace's are (:mod:`flamekit.analysis.native`)."""
    lines = Symbolizer()
    paths = {c.filename for c in codes.values() if c is not None}
    shown = shown_names(paths, [cmdline], full_filenames)
    out = []
    for t in threads:
        frames = []
        variables = list(t.locals) if bounds is not None else []
        merged = _merged(t, native)
        for n, (addr, offset) in enumerate(t.frames):
            code = codes.get(addr)
            if code is None:
                frame = DumpFrame(UNREADABLE, "?", None)
            else:
                line = lines.line_for_code(code, offset)
                frame = DumpFrame(code.qualname or code.name, shown[code.filename], line)
            found = variables[n] if n < len(variables) else None
            if bounds is not None and found is not None:
                frame.locals = [
                    DumpLocal(v.name, short_repr(v.value, bounds), v.arg) for v in found
                ]
            frames.append(frame)
        if merged is not None:  # the Python frames come in their order, root first
            python = reversed(frames)
            frames = [
                DumpFrame(f.name, f.object, f.line, None, True, f.source)
                if isinstance(f, NativeName)
                else next(python)
                for f in merged
            ][::-1]
        out.append(
            DumpThread(t.thread_id, t.native_tid, t.name, t.holds_gil, t.idle, frames, t.error)
        )
    return out
