"""What every part of the walk shares: the bounds that tell a torn or corrupt read from
a real stack, the shapes of what a walk returns, and what a frame model must do.

The bounds every reader of the target shares (how many interpreters and threads, the
largest range, the merge gap, what a pointer may be) come from record/bounds.py; those
below are the walk's own.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from flamekit.errors import TargetError
from flamekit.record.bounds import (  # noqa: F401 - the walk's names for them
    MAX_INTERPRETERS,
    MAX_RANGE,
    MAX_THREADS,
    MERGE_GAP,
    USER_SPACE_END,
    bad_pointer,
)
from flamekit.record.code_reader import _struct_at

if TYPE_CHECKING:
    from flamekit.record.walk.thread_list import Snapshot

#: Default cap on frames per thread: deeper chains are cut and flagged ``truncated``.
#: High, so that a recursion under a raised recursion limit is still recorded whole.
MAX_DEPTH = 1 << 16
#: Chains longer than this are checked for a cycle (a torn read can link a frame back to
#: one walked already) every so many frames, so one is an error at once, not a walk
#: that runs to MAX_DEPTH.
CYCLE_CHECK = 4096
#: Largest data-stack region read in one piece (bigger means a corrupt pointer).
MAX_REGION = MAX_RANGE
#: Extra bytes of data stack read beyond last walk's top, so a stack that grew a little
#: is still inside the speculative read.
REGION_SLACK = 2048
#: Frames outside the data stack (shims on the C stack, generators) remembered per thread
#: and prefetched next time: read in the same system call as the thread state, a chain of
#: generators (a `yield from` pipeline) is far less often torn than read frame by frame.
MAX_OUTSIDE = 64
#: Older data-stack chunks loaded per thread and walk (a corrupt list could be cyclic);
#: a MAX_DEPTH-deep recursion spans a few hundred.
MAX_CHUNKS = 1024
#: Most bytes of older chunks kept per thread to reuse a deep stack's outer part.
MAX_TAIL_BYTES = 32 << 20
#: Offsets beyond this are not believable for real bytecode (a torn read).
MAX_OFFSET = 1 << 26
CYCLIC = "cyclic chain: a frame links back to one walked already (a torn read)"

Frame = tuple[int, int]
#: One thread's walk: (frames innermost first, truncated, error, eval ends: see
#: ThreadStack.eval_ends).
WalkResult = tuple[tuple[Frame, ...], bool, "str | None", tuple[int, ...]]
#: (address, length) of one range of the target's memory.
Range = tuple[int, int]
#: One thread state as the thread list parsed it: (interp, tstate, thread_id, frame
#: (3.11/3.12: its _PyCFrame), native tid or None, data-stack chunk, data-stack top,
#: holds the GIL, unique id (<= 3.10)). A plain tuple, read by unpacking: one is built
#: per thread and walk, and a NamedTuple costs five times as much to build.
ThreadRow = tuple[int, int, int, int, "int | None", int, int, bool, int]


class ThreadStack(NamedTuple):
    """One thread's stack at one instant."""

    thread_id: int  #: threading.get_ident() in the target (the pthread_t)
    native_tid: int | None  #: kernel tid; None if it could not be established
    holds_gil: bool
    frames: tuple[Frame, ...]  #: (code address, instruction offset), innermost first
    truncated: bool  #: the chain was longer than max_depth and was cut (cyclic: ``error``)
    error: str | None  #: why ``frames`` is incomplete, if it is
    tstate: int  #: address of the PyThreadState (stable while the thread lives)
    interp: int  #: address of its PyInterpreterState
    #: 3.11+ (3.11: when the walker was asked for them): per evaluation call running this
    #: thread's frames, innermost call first, how many frames (innermost first) there are
    #: up to the end of its own: call k ran ``frames[eval_ends[k-1]:eval_ends[k]]``. On
    #: 3.11+ Python-to-Python calls share one call, so this is where a C-to-Python entry
    #: split the stack (record --native merges by it); empty where not read (<= 3.10:
    #: one call per frame)
    eval_ends: tuple[int, ...] = ()


def required(offset: int | None, name: str) -> int:
    """A Layout offset a frame model cannot work without, resolved once at construction
    so that the hot code adds plain ints."""
    if offset is None:
        raise TargetError(f"this CPython's layout has no {name}, which its frames need")
    return offset


def drop_dead(cache: dict[int, Any], live: set[int]) -> None:
    """Drop the entries of thread states not in ``live``."""
    for t in [t for t in cache if t not in live]:
        del cache[t]


class FrameStruct(NamedTuple):
    """How a frame model unpacks the four fields it reads of a frame (plus, <= 3.10, the
    "running" byte): one Struct from ``start``, and where each field lands in its tuple."""

    struct: struct.Struct
    order: list[int]  #: per field asked for, its position in the unpacked tuple
    identity: bool  #: exactly four fields, unpacked in the order asked for
    size: int


def frame_struct(fields: list[tuple[int, str]], start: int) -> FrameStruct:
    s, idx = _struct_at(fields, start)
    return FrameStruct(s, idx, idx == [0, 1, 2, 3], s.size)


class FrameModel:
    """What the front and the thread list ask of a frame model (one per CPython frame
    layout); each model keeps its own caches between walks. A thread's prefetch ``spec``
    and a steady walk's ``jobs`` are the model's own, opaque to the thread list that
    carries them (each model's methods say their types)."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth  #: frames per thread at most
        self.spliced = 0  #: thread walks that reused the bottom of the thread's last chain
        self.tail_hits = 0  #: thread walks that reused their last part in older chunks
        self.entries = 0  #: walks that found their thread entering the eval loop (3.11/3.12)
        #: what the model prefetches changed since the thread list planned its read
        self.replan = False

    def prefetch(self, tstate: int, ranges: list[Range]) -> Any:
        """Append the ranges that prefetch thread ``tstate``'s frames to the read being
        planned; return how to find them in it (None: nothing to prefetch)."""
        raise NotImplementedError

    def locate(self, spec: Any, at: list[int]) -> Any:
        """``spec`` once the read's plan is whole (``at``: where each range lands)."""
        return spec

    def control(self, spec: Any) -> tuple[int, ...]:
        """Indices of ``spec``'s ranges whose bytes decide where the frames are."""
        return ()

    #: whether the thread list may reuse its parse when its bytes came back the same
    steady = False

    def walk(self, threads: list[ThreadRow], snap: Snapshot) -> tuple[list[WalkResult], Any]:
        """Each thread's chain, in the order of ``threads``; and, when the frames' places
        followed from the read alone, the jobs a steady walk may run again (else None)."""
        raise NotImplementedError

    def walk_steady(self, jobs: Any, data: bytes) -> list[WalkResult]:
        """Walk again where a steady walk found the frames, in this read's ``data``."""
        raise NotImplementedError

    def forget(self, live: set[int]) -> None:
        """Drop what is kept for thread states not in ``live``."""
        raise NotImplementedError
