"""One raw look at every thread of a live process: what ``flamekit dump`` shows.

It uses the recorder's own pieces (pause, walk, code reader, /proc run states, thread
names), so a dump sees exactly what a recording would. Like the recorder it gives raw
data only: frames as (code address, instruction offset) and each code object's contents
as the trace's own CODE record; symbolizing them is the analysis layer's job
(:func:`flamekit.analysis.snapshot.symbolize`), the same as for a trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flamekit.record.code_reader import CodeError, CodeReader
from flamekit.record.proc.idle import ThreadStates, idle_by_frame
from flamekit.record.proc.memory import ReadError
from flamekit.record.proc.pause import Pauser
from flamekit.record.target import PythonTarget
from flamekit.record.threadnames import ThreadNames
from flamekit.record.walk import StackWalker
from flamekit.stop_signals import StopSignals
from flamekit.trace import records as R


@dataclass(frozen=True)
class ThreadSnapshot:
    """One thread at the instant of the snapshot."""

    thread_id: int  #: threading.get_ident()
    native_tid: int | None
    name: str | None
    holds_gil: bool
    idle: bool
    frames: tuple[tuple[int, int], ...]  #: (code address, instruction offset), innermost first
    error: str | None = None  #: why ``frames`` is incomplete, if it is


@dataclass(frozen=True)
class Snapshot:
    """Every thread of one process, and the code objects their frames name."""

    pid: int
    python_version: str
    threads: list[ThreadSnapshot]
    #: code address -> its contents (``ref`` is the address), None where unreadable
    codes: dict[int, R.Code | None] = field(default_factory=dict)


def snapshot(target: PythonTarget, pausing: bool = True) -> Snapshot:
    """Every thread's stack right now, raw, innermost frame first.

    A stop signal (Ctrl-C, SIGTERM, SIGHUP) that comes while the target is held waits
    until it is released and let go: it then interrupts the caller as usual."""
    with StopSignals().held():
        return _snapshot(target, pausing)


def _snapshot(target: PythonTarget, pausing: bool) -> Snapshot:
    states = ThreadStates(target.pid)
    pauser = Pauser(target.pid, target.memory.process) if pausing else None
    try:
        tids = pauser.threads if pauser is not None else tuple(states.tids())
        running = {tid: states.running(tid) for tid in tids}
        if pauser is not None:
            pauser.pause()
        try:
            walker = StackWalker(target, consistent=pauser is not None)
            stacks = walker.walk()
            reader = CodeReader(target)
            codes: dict[int, R.Code | None] = {}
            for st in stacks:
                for addr, _ in st.frames:
                    if addr not in codes:
                        try:
                            codes[addr] = reader.read_code(addr).record(addr, target.pid)
                        except (CodeError, ReadError):
                            codes[addr] = None
            interpreters = walker.interpreters
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
    threads = []
    for st in stacks:
        state = running.get(st.native_tid) if st.native_tid else None
        if state is None:  # kernel tid unknown (or the thread just went): the recorder's rule
            idle = idle_by_frame(st.frames, codes.get)
        else:
            idle = state is False
        threads.append(
            ThreadSnapshot(
                st.thread_id,
                st.native_tid,
                names.get(st.thread_id),
                st.holds_gil,
                idle,
                st.frames,
                st.error,
            )
        )
    return Snapshot(target.pid, target.version_string, threads, codes)
