"""One stack of C and Python: a trace's native stacks symbolized and merged with its
Python stacks (``record --native``), before anything else reads the trace.

Each sample of a ``--native`` recording has two stacks of one thread: the Python frames
the walker read and the native frames the unwinder read. In the native stack, each call
of the interpreter's frame-evaluation function (:data:`EVAL_FRAMES`, per version) is
where Python frames ran; merged, each such native frame is replaced by the Python frames
it was running, in order, so a flame graph reads ``caller (app.py:10) → flamekit_spin_in_c
[spinext.so] → callback (app.py:4)``.

Up to 3.10 one evaluation call runs one Python frame (a thread caught entering or
leaving one is in a call without its frame: see :func:`_guessed`). From 3.11 a Python-to-Python call
is inlined into the same evaluation call, so one call runs one or more frames: the
recorder reads where each call's frames end (3.11 is_entry, 3.12+ the entry shim; the
NATIVE_STACK record's ``eval_ends``), and each evaluation frame of the native stack,
innermost first, gets the frames of its own call. A trace without them (written before
they were recorded) falls back to a guess: each evaluation call but the outermost is
given one frame (a callback from C is most often a leaf), the outermost the rest. Frames
that cannot be placed (a native stack cut short) go at the root.

The merged trace is the same trace with more stacks: native functions become code
records of their own (refs above the trace's, listed in :attr:`Trace.native_codes`),
merged stacks get ids of their own, and the stack column says which each sample has; so
every filter, output and ``diff`` works on it unchanged.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import replace

from flamekit.symbolize.native import NativeName, NativeSymbolizer
from flamekit.trace import Trace
from flamekit.trace import records as R
from flamekit.trace.samplecodec import SampleColumns

#: Per CPython (major, minor): its frame-evaluation functions, and whether one call of
#: them runs several Python frames (3.11+: Python-to-Python calls inlined).
EVAL_FRAMES: dict[tuple[int, int], tuple[frozenset[str], bool]] = {
    (2, 7): (frozenset({"PyEval_EvalFrameEx"}), False),
    **{(3, m): (frozenset({"_PyEval_EvalFrameDefault"}), False) for m in range(6, 11)},
    **{(3, m): (frozenset({"_PyEval_EvalFrameDefault"}), True) for m in range(11, 15)},
}
#: A version newer than the table: as the newest known.
_NEWEST = max(EVAL_FRAMES)


def eval_frames(version: str | None) -> tuple[frozenset[str], bool]:
    """The evaluation functions of a ``"3.12.1"`` interpreter (see EVAL_FRAMES)."""
    try:
        major, minor = (int(x) for x in (version or "").split(".")[:2])
    except ValueError:
        return EVAL_FRAMES[_NEWEST]
    return EVAL_FRAMES.get((major, minor), EVAL_FRAMES[_NEWEST])


def _base(name: str) -> str:
    """A compiler's clone of a function is the function (``f.lto_priv.0``, ``f.cold``)."""
    return name.split(".", 1)[0]


def merge(
    python: tuple[tuple[int, int], ...],
    native: list[NativeName],
    evals: frozenset[str],
    inlined: bool,
    ends: Sequence[int] | None = None,
) -> list[tuple[int, int] | NativeName]:
    """One merged stack, root first: Python frames (code ref, offset) and native ones.

    ``python`` and ``native`` are innermost first, as the trace holds them; ``ends``:
    where each evaluation call's frames end in ``python``, innermost call first
    (ThreadStack.eval_ends; None or empty: not recorded, guessed)."""
    py = list(reversed(python))
    nat = list(reversed(native))
    at = [i for i, n in enumerate(nat) if _base(n.name) in evals]
    if not at:
        return [*py, *nat]  # C under Python (or a thread with no Python frames)
    sizes = _segments(len(py), ends) if inlined and ends else None
    if sizes is not None:
        counts, left = _by_segments(sizes, len(at))
    else:
        counts, left = _guessed(len(py), len(at), inlined)
    out: list[tuple[int, int] | NativeName] = list(py[:left])
    taken = left
    slot = dict(zip(at, counts))
    for i, n in enumerate(nat):
        c = slot.get(i)
        if c:
            out += py[taken : taken + c]
            taken += c
        else:
            out.append(n)
    return out


def _segments(n: int, ends: Sequence[int]) -> list[int] | None:
    """Frames per evaluation call, innermost first, from its ends in an ``n``-frame stack
    (None: ends that do not fit it, not to be trusted)."""
    sizes = []
    prev = 0
    for e in ends:
        if not prev <= e <= n:
            return None
        sizes.append(e - prev)
        prev = e
    if prev < n:
        sizes.append(n - prev)  # frames under the last end read: one more call
    return sizes


def _by_segments(sizes: list[int], calls: int) -> tuple[list[int], int]:
    """Per evaluation frame of the native stack (root first), the frames of its own call:
    matched innermost first; calls the native stack does not reach (cut short) put their
    frames at the root. Returns (counts, frames left for the root).

    One evaluation frame more than calls read is a thread caught entering a call before
    its entry frame is linked, or leaving one after it is unlinked: the innermost then
    runs no frame the walker saw and gets none, its caller's frames staying with the
    caller (else they would move inside the C function below it: 1 sample of ~900 on
    3.13 merged as ``flamekit_spin_in_c → <module> → caller``)."""
    counts = [0] * calls
    skip = 1 if calls == len(sizes) + 1 else 0
    for j, size in enumerate(sizes[: calls - skip]):
        counts[calls - 1 - skip - j] = size
    return counts, sum(sizes[calls - skip :])


def _guessed(n: int, calls: int, inlined: bool) -> tuple[list[int], int]:
    """The counts without recorded ends: one frame per evaluation call, innermost first;
    3.11+ (``inlined``): the outermost call the rest. Returns (counts, left for the root).

    Up to 3.10 an evaluation call links its frame as the thread's current one a few
    instructions after it starts (past the recursion check) and unlinks it just before
    it returns (then _Py_CheckFunctionResult), so a stopped thread may be in a call
    whose frame the walker cannot see: one call more than frames, always the innermost
    (a stack cut short has fewer calls, never more). That call gets none, and the others
    pair as usual; else its caller's frame would go to it and every frame below would
    shift one call outward, over the C between them (a 3.8 target calling an empty
    function in a loop, 1000 Hz: 358 of 4,681 samples, every one in the prologue or in
    _Py_CheckFunctionResult; tests/test_record_native.py's
    target, its callback's call of another: 1 sample in ~1,400 merged out of order)."""
    counts = [0] * calls
    left = n
    innermost = calls - 1 if inlined or calls != n + 1 else calls - 2
    for j in range(innermost, -1, -1):  # one each, innermost call first
        if left:
            counts[j] = 1
            left -= 1
    if inlined and counts[0]:
        counts[0] += left
        left = 0
    return counts, left


def with_native_stacks(trace: Trace, symbolizer: NativeSymbolizer) -> Trace:
    """``trace`` with each sample's Python and native stacks merged (see the module doc);
    the trace itself when it has no native stacks."""
    if not trace.native:
        return trace
    codes = dict(trace.codes)
    stacks = dict(trace.stacks)
    native_codes: dict[int, str] = {}
    native_lines: dict[int, tuple[str, int]] = {}
    code_of: dict[tuple[str, str, str | None, int | None], int] = {}
    next_ref = max(codes, default=-1) + 1
    next_sid = max(stacks, default=0) + 1
    merged: dict[tuple[int, int, int], int] = {}
    names: dict[tuple[int, int], list[NativeName]] = {}
    cols = trace.columns
    new_stack = array("Q", cols.stack)
    versions = {run.pid: run.process.python_version for run in trace.runs}
    for i, nid in enumerate(trace.native):
        if not nid:
            continue
        sid = cols.stack[i]
        pid = trace.run_of(cols.thread[i]).pid
        key = (sid, nid, pid)
        got = merged.get(key)
        if got is None:
            ips, _cut = trace.native_stacks[nid]
            nat = names.get((pid, nid))
            if nat is None:
                nat = names[(pid, nid)] = [
                    symbolizer.name(pid, ip, k > 0) for k, ip in enumerate(ips)
                ]
            evals, inlined = eval_frames(versions.get(pid) or trace.header.python_version)
            frames = []
            ends = trace.native_ends.get(nid)
            for f in reversed(merge(trace.stacks.get(sid, ()), nat, evals, inlined, ends)):
                if isinstance(f, NativeName):
                    where = (f.object, f.name, f.source, f.line)
                    ref = code_of.get(where)
                    if ref is None:
                        ref = code_of[where] = next_ref
                        next_ref += 1
                        codes[ref] = R.Code(ref, pid, 0, f.name, None, f.object, 0, b"", 0)
                        native_codes[ref] = f.library
                        if f.source is not None and f.line is not None:
                            native_lines[ref] = (f.source, f.line)
                    frames.append((ref, 0))
                else:
                    frames.append(f)
            got = merged[key] = next_sid
            stacks[next_sid] = tuple(frames)
            next_sid += 1
        new_stack[i] = got
    columns = SampleColumns()
    columns.time, columns.thread, columns.flags = cols.time, cols.thread, cols.flags
    columns.stack = new_stack
    return replace(
        trace, codes=codes, stacks=stacks, columns=columns, native_codes=native_codes,
        native_lines=native_lines,
    )  # fmt: skip
