"""One symbolized look at every thread of a live process: what ``flamekit dump`` prints.

It uses the recorder's own pieces (pause, walk, code reader, /proc run states, thread
names) and the offline symbolizer, so a dump shows exactly what a recording would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flamekit.record.code_reader import CodeError, CodeReader
from flamekit.record.proc.idle import ThreadStates, idle_by_frame
from flamekit.record.target import PythonTarget
from flamekit.record.proc.memory import ReadError
from flamekit.record.proc.pause import Pauser
from flamekit.record.threadnames import ThreadNames
from flamekit.record.walk import StackWalker
from flamekit.symbolize import line_for_offset


@dataclass
class DumpFrame:
    function: str  #: qualified name where the version has one
    file: str
    line: int | None


@dataclass
class DumpThread:
    thread_id: int  #: threading.get_ident()
    native_tid: int | None
    name: str | None
    holds_gil: bool
    idle: bool
    frames: list[DumpFrame] = field(default_factory=list)  #: innermost first
    error: str | None = None


def snapshot(target: PythonTarget, pausing: bool = True) -> list[DumpThread]:
    """Every thread's stack right now, symbolized, innermost frame first."""
    states = ThreadStates(target.pid)
    pauser = Pauser(target.pid) if pausing else None
    try:
        tids = pauser.threads if pauser is not None else tuple(states.tids())
        running = {tid: states.running(tid) for tid in tids}
        if pauser is not None:
            pauser.pause()
        try:
            walker = StackWalker(target, consistent=pauser is not None)
            stacks = walker.walk()
            reader = CodeReader(target)
            codes = {}
            for st in stacks:
                for addr, _ in st.frames:
                    if addr not in codes:
                        try:
                            codes[addr] = reader.read_code(addr)
                        except (CodeError, ReadError):
                            codes[addr] = None
            # TEMPORARY getattr: StackWalker.interpreters comes with the walker's split.
            interpreters = getattr(walker, "interpreters", None)
            names = ThreadNames(target, reader).lookup(
                [st.thread_id for st in stacks], interpreters
            )
        finally:
            if pauser is not None:
                pauser.resume()
    finally:
        if pauser is not None:
            pauser.close()
        states.close()
    out = []
    for st in stacks:
        frames = []
        for addr, offset in st.frames:
            info = codes.get(addr)
            if info is None:
                frames.append(DumpFrame("<unreadable code>", "?", None))
                continue
            line = line_for_offset(info.linetable, info.linetable_format, info.firstlineno, offset)
            frames.append(DumpFrame(info.qualname or info.name, info.filename, line))
        state = running.get(st.native_tid) if st.native_tid else None
        if state is None:  # kernel tid unknown (or the thread just went): the recorder's rule
            idle = idle_by_frame(st.frames, codes.get)
        else:
            idle = state is False
        out.append(
            DumpThread(
                st.thread_id,
                st.native_tid,
                names.get(st.thread_id),
                st.holds_gil,
                idle,
                frames,
                st.error,
            )
        )
    return out
