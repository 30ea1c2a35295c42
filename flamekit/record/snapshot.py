"""One raw look at every thread of a live process: what ``flamekit dump`` shows.

It uses the recorder's own pieces (pause, walk, code reader, /proc run states, thread
names), so a dump sees exactly what a recording would. Like the recorder it gives raw
data only: frames as (code address, instruction offset) and each code object's contents
as the trace's own CODE record; symbolizing them is the analysis layer's job
(:func:`flamekit.analysis.snapshot.symbolize`), the same as for a trace. Asked for, it
reads each frame's arguments and locals too (:mod:`flamekit.record.frame_locals`), as
raw values of the object reader; their reprs are the analysis layer's
(:mod:`flamekit.analysis.value_repr`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flamekit.errors import TargetError
from flamekit.record.code_reader import CodeError, CodeReader
from flamekit.record.frame_locals import Local, LocalsReader, frame_chain
from flamekit.record.objects import Limits
from flamekit.record.proc.idle import ThreadStates, idle_by_frame
from flamekit.record.proc.memory import ReadError
from flamekit.record.proc.pause import Pauser
from flamekit.record.proc.unwind import NativeUnwinder
from flamekit.record.target import PythonTarget, open_target
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
    #: per frame, its bound variables (None: not read, or unreadable); empty when locals
    #: were not asked for
    locals: tuple[tuple[Local, ...] | None, ...] = ()
    #: --native: its native stack's instruction pointers, innermost first (None: not
    #: asked for, or not read), and whether the unwind was cut short
    native: tuple[int, ...] | None = None
    native_cut: bool = False
    #: --native, 3.11+: where each evaluation call's frames end (ThreadStack.eval_ends)
    eval_ends: tuple[int, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Every thread of one process, and the code objects their frames name."""

    pid: int
    python_version: str
    threads: list[ThreadSnapshot]
    #: code address -> its contents (``ref`` is the address), None where unreadable
    codes: dict[int, R.Code | None] = field(default_factory=dict)
    #: --native: the ELF objects loaded, as a trace's NATIVE_OBJECT records
    native_objects: list[R.NativeObject] = field(default_factory=list)


def snapshot(
    target: PythonTarget,
    pausing: bool = True,
    locals_limits: Limits | None = None,
    native: bool = False,
) -> Snapshot:
    """Every thread's stack right now, raw, innermost frame first; with
    ``locals_limits``, each frame's variables too, read within those limits.

    A stop signal (Ctrl-C, SIGTERM, SIGHUP) that comes while the target is held waits
    until it is released and let go: it then interrupts the caller as usual. With
    ``native`` (pausing only), each thread's native stack too, raw."""
    with StopSignals().held():
        return _snapshot(target, pausing, locals_limits, native)


def _snapshot(
    target: PythonTarget, pausing: bool, locals_limits: Limits | None, native: bool
) -> Snapshot:
    states = ThreadStates(target.pid)
    pauser = Pauser(target.pid, target.memory.process) if pausing else None
    try:
        tids = pauser.threads if pauser is not None else tuple(states.tids())
        running = {tid: states.running(tid) for tid in tids}
        # What needs no paused target is done before the pause, which it would lengthen:
        # the type symbols (the ELF's symbol table: thread names and values need them)
        # and the object offsets.
        reader = CodeReader(target)
        reader.objects.read_type_symbols()
        locals_reader = None
        if locals_limits is not None and reader.objects.off is not None:
            locals_reader = LocalsReader(target, reader.objects, locals_limits)
        unwinder = NativeUnwinder(target.pid, target.memory) if native and pauser else None
        natives: dict[int, tuple[tuple[int, ...], bool] | None] = {}
        if pauser is not None:
            pauser.pause()
        try:
            walker = StackWalker(target, consistent=pauser is not None, eval_ends=native)
            stacks = walker.walk()
            if unwinder is not None:
                for st in stacks:
                    if st.native_tid and st.native_tid not in natives:
                        natives[st.native_tid] = unwinder.unwind(st.native_tid)
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
            variables: dict[int, tuple[tuple[Local, ...] | None, ...]] = {}
            if locals_reader is not None:
                for st in stacks:
                    variables[st.tstate] = _thread_locals(
                        target, locals_reader, st.tstate, st.frames
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
                variables.get(st.tstate, ()),
                *(natives.get(st.native_tid) or (None, False)),
                st.eval_ends,
            )
        )
    objects = [
        R.NativeObject(target.pid, o.path, o.build_id, o.bias, o.ranges, 0)
        for o in (unwinder.appeared if unwinder is not None else ())
    ]
    return Snapshot(target.pid, target.version_string, threads, codes, objects)


def _thread_locals(
    target: PythonTarget,
    reader: LocalsReader,
    tstate: int,
    frames: tuple[tuple[int, int], ...],
) -> tuple[tuple[Local, ...] | None, ...]:
    """Each of the walker's frames' variables, from a chain walked again for the frames'
    addresses (frame_locals.frame_chain): paired by position while the code addresses
    agree. A paused target's do; a frame past a disagreement (a live target's stack
    moved between the two walks) gets None, never another frame's variables."""
    chain = frame_chain(target, tstate)
    paired = []
    for (code, _), (frame, chain_code) in zip(frames, chain):
        if code != chain_code:
            break
        paired.append((frame, code))
    found = reader.read(paired)
    return tuple(found) + (None,) * (len(frames) - len(found))


def snapshot_tree(
    root: int, pausing: bool = True, locals_limits: Limits | None = None, native: bool = False
) -> list[Snapshot]:
    """The root and every Python process descended from it, one snapshot each (parents
    first). A descendant that is not a CPython we can read is left out; one that ends
    while we look is too. The root must be one (TargetError otherwise)."""
    from flamekit.record.proc.tree import ProcessTree

    out = []
    tree = ProcessTree(root)
    found = tree.poll()
    tree.close()
    for pid in [root, *found]:
        try:
            target = open_target(pid)
        except TargetError:
            if pid == root:
                raise
            continue
        try:
            out.append(snapshot(target, pausing, locals_limits, native))
        except TargetError:
            if pid == root:
                raise
        finally:
            target.close()
    return out
