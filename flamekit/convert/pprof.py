"""pprof: a gzip-compressed ``perftools.profiles.Profile`` protocol buffer.

The format ``go tool pprof``, Pyroscope, Parca and Google Cloud Profiler read
(profile.proto). Written with :mod:`flamekit.convert.protobuf_wire`, no protobuf runtime.

What goes in, and why:

* ``sample_type``: ``samples/count`` and ``wall/nanoseconds``; the time value is the
  count times the sampling period (``period_type`` ``wall/nanoseconds``, ``period``),
  the convention for sampled wall-clock profiles. ``default_sample_type`` is ``wall``.
* one ``Sample`` per distinct (thread, stack): ``location_id`` leaf first, values
  ``[count, count * period]`` (at most int64's largest: a trace may state a rate of one
  sample in days and hold millions of samples), and the labels ``thread`` (string: the
  thread's name), ``thread_id`` (number: its native TID, when known) and ``pid``
  (number: its process), so ``-tagfocus``/``-tagshow`` can split threads and processes.
  Stacks start at the root frame every other format has: ``process PID: COMMAND LINE``
  for a process tree, ``thread NAME (TID)`` with ``--threads``.
* one ``Function`` per function-level frame: ``name`` the qualified name,
  ``system_name`` the code object's plain name where it differs (``method`` for
  ``Class.method``), ``filename``, ``start_line`` (its ``co_firstlineno``). A
  ``system_name`` equal to ``name`` is left out on purpose: pprof takes such a function
  for a not-yet-demangled C++ symbol and its demangling heuristics delete anything in
  ``<...>``, so ``<module>`` or ``<lambda>`` would show as an empty name unless the
  reader remembered ``-symbolize=none``; one ``Location`` per frame with one ``Line`` (function, line; 0
  at function level or when the line is unknown). Ids start at 1 (0 means "none").
* one ``Mapping`` for the interpreter, marked as having functions, file names and line
  numbers, so pprof never tries to symbolize addresses (there are none: address 0).
* ``string_table[0]`` is ``""`` (pprof rejects the file otherwise); ``time_nanos`` is the
  wall-clock start of the window, ``duration_nanos`` its length; ``comment`` holds the
  recorded command line and the exporter.

Names are stored as they are (UTF-8; a lone surrogate, which UTF-8 cannot hold, as its
``\\udXXX`` text). pprof splits nothing on them, so no other escaping is needed.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator

from flamekit import __version__
from flamekit.analysis.budget import TEXT_CHAR, Estimate, ceiling_fits, facts, varint_size
from flamekit.analysis.filters import Selection
from flamekit.analysis.profile import NATIVE, cap_name
from flamekit.convert._common import period_ns, window_ns
from flamekit.convert.base import ConvertOptions, register
from flamekit.convert.protobuf_wire import Message, varint

# profile.proto field numbers
P_SAMPLE_TYPE, P_SAMPLE, P_MAPPING, P_LOCATION, P_FUNCTION, P_STRING_TABLE = 1, 2, 3, 4, 5, 6
P_TIME_NANOS, P_DURATION_NANOS, P_PERIOD_TYPE, P_PERIOD, P_COMMENT = 9, 10, 11, 12, 13
P_DEFAULT_SAMPLE_TYPE = 14
#: The largest value of an int64 field.
I64_MAX = (1 << 63) - 1


class _Strings:
    """The string table: index per distinct string, ``""`` first."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.index)
        return i


def _value_type(strings: _Strings, type_: str, unit: str) -> Message:
    return Message().number(1, strings(type_)).number(2, strings(unit))


def build(sel: Selection, opts: ConvertOptions) -> bytes:
    """The uncompressed Profile message (see the module doc)."""
    return b"".join(fields(sel, opts))


def fields(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The Profile message, one top-level field at a time: a message's fields may come in
    any order and repeat, so nothing but the string table (written last, once every string
    is known) waits for the rest."""
    prof = sel.profile
    tr = prof.trace
    frames = prof.frames
    period = period_ns(sel)
    start, end = window_ns(sel)
    strings = _Strings()

    def field(number: int, sub: Message) -> bytes:
        return bytes(Message().message(number, sub).buf)

    yield field(P_SAMPLE_TYPE, _value_type(strings, "samples", "count"))
    yield field(P_SAMPLE_TYPE, _value_type(strings, "wall", "nanoseconds"))

    idx = sel.indices
    thr = tr.columns.thread
    stk = tr.columns.stack
    raw = Counter(zip(map(thr.__getitem__, idx), map(stk.__getitem__, idx)))
    # Merge (thread, stack id) pairs that symbolize to the same frames (e.g. two offsets
    # on one line); keep threads apart, they carry labels. The thread's root frame (with
    # --threads) stays apart from the stack, which is shared by every thread's key.
    merged: dict[tuple[int, tuple[int, ...], tuple[int, ...]], int] = {}
    for (thread, sid), n in raw.items():
        k = (thread, sel.root(thread), prof.stack(sid, opts.lines))
        merged[k] = merged.get(k, 0) + n

    k_thread, k_tid, k_pid = strings("thread"), strings("thread_id"), strings("pid")
    labels: dict[int, bytes] = {}
    used_frames: set[int] = set()
    # A stack's location ids (leaf first), packed once however many threads ran it.
    packed: dict[int, bytes] = {}
    for (thread, root, stack), n in sorted(merged.items()):
        lab = labels.get(thread)
        if lab is None:
            t = tr.threads.get(thread)
            name = cap_name(t.name) if t is not None and t.name is not None else "?"
            m = Message().message(3, Message().number(1, k_thread).number(2, strings(name)))
            if t is not None and t.native_tid is not None:
                m.message(3, Message().number(1, k_tid).number(3, t.native_tid, always=True))
            if thread in tr.thread_runs:
                pid = tr.run_of(thread).pid
                m.message(3, Message().number(1, k_pid).number(3, pid, always=True))
            lab = labels[thread] = bytes(m.buf)
        ids = packed.get(id(stack))
        if ids is None:
            ids = packed[id(stack)] = b"".join([varint(f + 1) for f in reversed(stack)])
            used_frames.update(stack)
        used_frames.update(root)
        sample = Message().blob(1, ids + b"".join([varint(f + 1) for f in root]))
        sample.packed(2, (n, min(n * period, I64_MAX)))
        sample.buf += lab
        yield field(P_SAMPLE, sample)

    cmd = " ".join(tr.header.cmdline)
    mapping = Message().number(1, 1).number(5, strings(tr.header.cmdline[0] if cmd else "python"))
    mapping.number(7, 1).number(8, 1).number(9, 1)
    yield field(P_MAPPING, mapping)
    # --native: each object a native frame is in is a mapping of its own (id 2 on)
    objects: dict[str, int] = {}
    for fid in sorted(used_frames):
        fr = frames[fid]
        if fr.kind == NATIVE and fr.file not in objects:
            objects[fr.file] = len(objects) + 2
            m = Message().number(1, objects[fr.file]).number(5, strings(fr.file)).number(7, 1)
            yield field(P_MAPPING, m)

    functions: set[int] = set()
    for fid in sorted(used_frames):
        fr = frames[fid]
        fn = prof.function_of[fid]
        functions.add(fn)
        line = Message().number(1, fn + 1).number(2, fr.line or 0)
        where = objects[fr.file] if fr.kind == NATIVE else 1
        yield field(P_LOCATION, Message().number(1, fid + 1).number(2, where).message(4, line))
    for fn in sorted(functions):
        fr = frames[fn]
        f = Message().number(1, fn + 1).number(2, strings(fr.qualname))
        if fr.name != fr.qualname:
            f.number(3, strings(fr.name))
        f.number(4, strings(fr.file))
        f.number(5, fr.firstlineno or 0)
        yield field(P_FUNCTION, f)

    comments = [strings(f"flamekit {__version__}")]
    if cmd:
        comments.append(strings(f"command: {cmd}"))
    wall = strings("wall")
    ns = strings("nanoseconds")
    out = Message()
    for s in strings.index:  # insertion order is index order
        out.string(P_STRING_TABLE, s)
    out.number(P_TIME_NANOS, tr.header.start_wall_ns + start)
    out.number(P_DURATION_NANOS, end - start)
    out.message(P_PERIOD_TYPE, Message().number(1, wall).number(2, ns))
    out.number(P_PERIOD, period)
    out.packed(P_COMMENT, comments)
    out.number(P_DEFAULT_SAMPLE_TYPE, wall)
    yield bytes(out.buf)


def estimate(sel: Selection, opts: ConvertOptions, budget: int | None) -> Estimate:
    """Before compression: a sample per (thread, stack) of a location id a frame and its
    values and labels; a location per frame, a function per function; every string.
    First a ceiling: every stack of the trace under every thread."""
    prof = sel.profile
    tr = prof.trace
    ids = varint_size(len(prof.frames) + 1)
    per_sample = 2 * 10 + 16 + 16 + ids  # values; keys and lengths; the thread's labels
    root = 1 if sel.keyed_by_thread else 0
    f = facts(sel, opts.lines)
    texts = TEXT_CHAR * f.labels * (len(prof.frames) + f.threads)
    frames = len(prof.frames) * (30 + 3 * ids)
    pairs = min(f.stacks * f.threads, len(sel))
    top = (f.frames + f.stacks) * f.threads * ids + pairs * (per_sample + ids) + frames + texts
    top += 200 + 4 * len(" ".join(tr.header.cmdline).encode("utf-8", "backslashreplace"))
    top += _MAPPING * len(tr.native_codes)  # --native: at most a mapping per function
    if ceiling_fits(top, budget):
        return Estimate(top)
    depth: dict[int, int] = {}
    samples = used = 0
    cols = tr.columns
    for _, sid in set(
        zip(map(cols.thread.__getitem__, sel.indices), map(cols.stack.__getitem__, sel.indices))
    ):
        d = depth.get(sid)
        if d is None:
            d = depth[sid] = len(prof.stack(sid, opts.lines))
            used += d
        samples += (d + root) * ids + per_sample
    texts = {cap_name(t.name or "") for t in tr.threads.values()}
    for f in prof.frames:  # a bound: frames on no selected stack are counted too
        texts.update((f.name, f.qualname, f.file))
    table = sum(len(t.encode("utf-8", "backslashreplace")) + 4 for t in texts)
    head = 200 + 4 * len(" ".join(tr.header.cmdline).encode("utf-8", "backslashreplace"))
    frames = min(used + len(tr.threads), len(prof.frames))
    maps = _MAPPING * len(tr.native_codes)
    return Estimate(head + samples + frames * (30 + 3 * ids) + table + maps)


#: A native object's Mapping message, but for its file name (counted with the strings).
_MAPPING = 24


@register(
    "pprof", ".pb.gz", "pprof profile.proto (gzipped): go tool pprof, Pyroscope, Parca.", estimate
)
def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]:
    """The gzip-compressed Profile, compressed as its fields are made (the budget counts
    the bytes before compression: what is made, whatever it packs to)."""
    z = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    pending = bytearray()
    for part in fields(sel, opts):
        pending += part
        if len(pending) >= 1 << 16:
            out = z.compress(pending)
            pending.clear()
            if out:
                yield out
    yield z.compress(pending) + z.flush()
