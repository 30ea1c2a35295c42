"""Reading every thread's Python stack out of a live CPython process.

One :class:`StackWalker` per target; :meth:`StackWalker.walk` returns, per thread, its
ids, whether it holds the GIL, and its frames innermost first as
``(code object address, instruction offset)`` in the convention of
:mod:`flamekit.codeformat`. Version differences come from the target's
:class:`~flamekit.record.layout.Layout`; the code below never tests a version number.

The rooms: :mod:`.thread_list` (the first read: interpreters, thread states, GIL words,
each thread's prefetched frames), one frame model per CPython frame layout
(:mod:`.interpreter_frames` for 3.11+, :mod:`.frame_objects` for 3.10 and older), each
keeping its own caches, :mod:`.native_tids` (kernel tids as /proc here names them: read
where the thread state has none, :mod:`.pthread_tids`, and translated out of a
container's PID namespace) and :mod:`.common` (bounds and shapes). :class:`StackWalker`
ties them together.

Speed is the point (a sample every millisecond, in Python), so in the steady state a
walk is ONE system call, however many threads and frames there are. It reads, in one
``process_vm_readv``, everything the previous walk found: the interpreters head, each
interpreter and thread state, the GIL words, and each thread's frames (on 3.11+ the used
part of its current data-stack chunk plus some slack, and frames found outside it such as
C-stack shims and generators; on 3.10 and older the frame objects of its last chain,
neighbours merged into one range). Then it checks that the chain still links up the
same way; whatever changed is re-read (the thread list link by link; a thread's frames
with one more vectored read for all threads; frames not seen before one by one). The
caller's own ranges (``extra``: the code headers it checks every sample) ride along.

Parsing is the other cost, so only what changed is parsed: each thread's last chain is
kept, and where the data stack below a frame holds the same bytes as last time (and the
prefetched frames outside it too) the rest of the chain is taken from it, a walk being a
function of those bytes alone (:mod:`.interpreter_frames`). On 3.10 and older the same
holds for the frame objects of the last chain: their bytes are gathered from the
prefetch and compared with last time's (:mod:`.frame_objects`).
Likewise for everything before the frames: when the thread list's bytes (interpreter and
thread states, GIL words, current-frame words) are last walk's, so is its parse
(:mod:`.thread_list`).

Code objects are not read during a walk (their headers are only copied along). Frames
that are not Python calls are dropped by owner (C-stack and interpreter shims, 3.12+)
and, on 3.13+, by comparing f_executable with ``&_Py_NoneStruct``; every other code
pointer is only checked for shape. The full
``ob_type == &PyCode_Type`` check is part of the per-sample identity check callers run
anyway (``CodeReader.fingerprints`` / ``fingerprint_from`` return None for anything that
is not a code object), so it costs no extra read here.

One call is also what keeps a walk consistent when the target runs while we read
(nonblocking mode): thread state and frames are copied microseconds apart, not a whole
Python loop apart. Anything can still be torn, so every pointer is checked before use,
a chain is cut at ``max_depth`` frames (``truncated``), and a thread whose stack cannot
be read completely comes back with ``error`` set and the frames read so far. Only a
vanished process raises (ProcessGoneError).
"""

from __future__ import annotations

from flamekit.record.proc.memory import ProcessGoneError
from flamekit.record.target import PythonTarget
from flamekit.record.walk.common import (
    CYCLE_CHECK,
    MAX_DEPTH,
    FrameModel,
    Range,
    ThreadStack,
)
from flamekit.record.walk.frame_objects import FrameObjects
from flamekit.record.walk.interpreter_frames import InterpreterFrames
from flamekit.record.walk.native_tids import NamespacedTids, NativeTids
from flamekit.record.walk.pthread_tids import PthreadTids
from flamekit.record.walk.thread_list import Snapshot, ThreadList

#: Times a walk with a thread whose chain failed (most often torn by the target's running,
#: non-blocking) reads everything again in one call, before retrying thread by thread:
#: on a `yield from` pipeline that keeps relinking its frames, 53-56% of non-blocking
#: ticks failed with none, 24-30% with two when any whole second read was kept, 39-59%
#: keeping only those that go on from the torn read (see _continues).
REWALKS = 2


class StackWalker:
    """Walks all threads of one target. Its parts keep per-thread caches between walks."""

    def __init__(
        self,
        target: PythonTarget,
        *,
        max_depth: int = MAX_DEPTH,
        consistent: bool = False,
        eval_ends: bool = False,
    ) -> None:
        """``consistent``: every walk reads a stopped target (pausing mode), so a chain
        that fails was not torn by a racing read (see InterpreterFrames._caller_frame).
        ``eval_ends``: report where each evaluation call's frames end on 3.11 too
        (ThreadStack.eval_ends; 3.12+ always has them, 3.11 reads one more byte a frame)."""
        self.target = target
        self.consistent = consistent
        self.memory = target.memory
        self.layout = lay = target.layout
        self.errors = 0  #: threads returned with ``error`` set, over the walker's life
        self._frames: FrameModel = (
            FrameObjects(target, max_depth, consistent)
            if lay.frame_objects
            else InterpreterFrames(target, max_depth, consistent, eval_ends)
        )
        self._threads = ThreadList(target, self._frames)
        #: Kernel tids where the thread states hold none (3.10 and older) or hold the
        #: ids of another PID namespace (a container's); None: the states' own are /proc's
        self._native_tids: NativeTids | None = None
        if lay.frame_objects:
            reread = lay.tstate_unique_id is None  # 2.7, 3.6
            self._native_tids = PthreadTids(target.memory, target.tids, reread)
        elif target.tids.nested:
            self._native_tids = NamespacedTids(target.tids)
        #: Ranges the caller wants read in the same system call as the stacks (the code
        #: headers it checks every sample); after a walk, ``extra_data`` holds their bytes
        #: concatenated, or None if this walk did not read them (whole).
        self.extra: tuple[Range, ...] = ()
        self.extra_data: bytes | None = None

    @property
    def max_depth(self) -> int:
        """Frames per thread at most: deeper chains are cut and flagged ``truncated``."""
        return self._frames.max_depth

    @property
    def interpreters(self) -> tuple[int, ...]:
        """The PyInterpreterState addresses as of the last walk (empty if it could not
        read the list whole), for readers that need them without walking the list again."""
        return self._threads.interpreters

    @property
    def spliced(self) -> int:
        """Thread walks that reused the bottom of the thread's last chain."""
        return self._frames.spliced

    @property
    def steadied(self) -> int:
        """Walks that reused the last one's parse of the thread list (3.11+)."""
        return self._threads.steadied

    @property
    def tail_hits(self) -> int:
        """Thread walks that reused their last part in older data-stack chunks (3.11+)."""
        return self._frames.tail_hits

    @property
    def entries(self) -> int:
        """Walks that found their thread entering the eval loop (3.11/3.12)."""
        return self._frames.entries

    def walk(self) -> list[ThreadStack]:
        """Every thread of every interpreter, with its stack. See ThreadStack."""
        self.extra_data = None
        snap = self._read()
        if snap is None:
            snap = self._threads.read_slow()
        if not snap.threads and snap.steady is None:
            return []
        out = self._walk_frames(snap)
        if snap.steady is None:  # else the same threads as last time
            self._frames.forget({t.tstate for t in out})
        for _ in range(0 if self.consistent else REWALKS):  # a stopped target reads the same
            failed = [n for n, t in enumerate(out) if t.error is not None]
            if not failed:
                break
            again_snap = self._read()
            if again_snap is None:
                break
            again = {t.tstate: t for t in self._walk_frames(again_snap)}
            for n in failed:
                t = again.get(out[n].tstate)
                if t is not None and _continues(out[n], t):
                    out[n] = t._replace(holds_gil=out[n].holds_gil)
        for n, t in enumerate(out):
            if t.error is not None:
                # Most often a torn read of a running thread: look once more, right now.
                again_t = self._retry(t)
                if again_t is not None and _continues(t, again_t):
                    out[n] = again_t
                else:
                    self.errors += 1
        return out

    def _read(self) -> Snapshot | None:
        """The one-read walk start (None: the thread list must be read link by link)."""
        snap, extra_data = self._threads.read_fast(self.extra)
        if extra_data is not None:
            self.extra_data = extra_data
        return snap

    def _walk_frames(self, snap: Snapshot) -> list[ThreadStack]:
        steady = snap.steady
        if steady is not None:
            threads = steady.threads
            stacks = self._frames.walk_steady(steady.jobs, snap.data)
        else:
            threads = self._threads.parse(snap)
            stacks, jobs = self._frames.walk(threads, snap)
            if jobs is not None:
                self._threads.keep_steady(snap, threads, jobs)
        if self._native_tids is not None:
            threads = self._native_tids.fill(threads)
        return [
            ThreadStack(thread_id, native, holds, frames, truncated, error, tstate, interp, ends)
            for (interp, tstate, thread_id, _, native, _, _, holds, _), (
                frames,
                truncated,
                error,
                ends,
            ) in zip(threads, stacks)
        ]

    def _retry(self, stack: ThreadStack) -> ThreadStack | None:
        """The stack of one thread, read afresh (thread state, then its frames)."""
        snap = self._threads.read_one(stack.interp, stack.tstate)
        if snap is None:
            return None
        (again,) = self._walk_frames(snap)
        if again.thread_id != stack.thread_id:
            return None  # the thread state now belongs to another thread
        return again._replace(holds_gil=stack.holds_gil)


def _continues(torn: ThreadStack, again: ThreadStack) -> bool:
    """Whether a stack read again may stand for a torn one: read whole, of the same
    thread, and running the same code innermost as far as the torn read got.

    A read fails most often because the thread changed its stack meanwhile, so a read
    right after finds it just past that change, more often than chance would: any
    second read taken in place of the failed one weighed those moments up. On a
    20-deep ``yield from`` chain (tests/targets/gen_chain.py, 3.12, 3 x 2 s at 1 kHz
    non-blocking) the consumer loop was the innermost function of 45% of the samples
    against 12.5% paused (the distance of the innermost functions' shares from the
    paused ones' 0.33); on an asyncio program (bench/workloads/real/asyncio_mix.py)
    ``Handle._run``, the moment between two task steps, 16.5% against 5.3% (0.18).
    Taking only a second read that goes on where the torn one was (its innermost code
    the same), 22% and 9.6% (0.13 and 0.10), at the price of more failed reads counted
    as errors (30% to 51% of the chain's ticks, 5% to 14% of the asyncio loop's)."""
    if again.error is not None or again.thread_id != torn.thread_id:
        return False
    if not torn.frames:
        return True  # nothing read to go on from (see InterpreterFrames._caller_frame)
    return bool(again.frames) and again.frames[0][0] == torn.frames[0][0]


def walk_once(pid: int) -> list[ThreadStack]:
    """Attach, walk every thread once, detach: for tools and tests, not for sampling."""
    from flamekit.record.target import open_target

    target = open_target(pid)
    try:
        return StackWalker(target).walk()
    finally:
        target.close()


__all__ = [
    "CYCLE_CHECK",
    "MAX_DEPTH",
    "ProcessGoneError",
    "StackWalker",
    "ThreadStack",
    "walk_once",
]
