"""FKT record types and their msgpack shapes (the format is specified in formats/fkt.md).

Every record is a msgpack array whose first element is its kind. Decoding is strict about
the fields a record must have and lenient about extra trailing fields, which is how a
minor format version adds information without breaking older readers.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, overload

from flamekit.codeformat import ALL_FORMATS

MAGIC = b"\x89FKT\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 3
PREAMBLE_SIZE = len(MAGIC) + 4  # magic, u16 major, u16 minor (little endian)

HEADER = 0
THREAD = 1
CODE = 2
STACK = 3
SAMPLES = 4
PROCESS = 5
END = 6
PROCESS_END = 7
NATIVE_OBJECT = 8
NATIVE_STACK = 9
NATIVE_SAMPLES = 10

#: Why a recording ended, as written in the END record.
END_REASONS = ("duration", "target-exited", "interrupted", "error")

#: Stack id 0 is the empty stack (a thread with no Python frames); it has no STACK record.
EMPTY_STACK = 0

U64_MAX = (1 << 64) - 1

#: The format's own limits, which the recorder never exceeds and the reader enforces.
#: Frames per stack: the recorder cuts a deeper chain at this depth (and counts an error).
MAX_STACK_DEPTH = 1 << 16
#: Bytes of a code object's line table: the recorder reads at most this much of one.
MAX_LINETABLE = 1 << 20
#: Times since the recording's origin (samples, first-seen times, END's duration) are
#: below this, 2^62 ns (146 years), and a wall-clock start lies in [-2^62, 2^62] ns
#: (1824-2116): so a start plus any time of the recording, which pprof writes as a
#: signed 64-bit number, always fits one.
MAX_TIME_NS = 1 << 62

#: Records held by the thousand (a trace of THREAD records) keep no per-instance dict
#: where the running Python can say so: dataclass slots, with the defaults the format's
#: later fields need (3.10+; 3.9 holds them in a dict).
_SLOTS: dict[str, bool] = {"slots": True} if sys.version_info >= (3, 10) else {}
#: The lowest sampling rate a header may state, other than 0 (unknown): one sample in
#: 11.6 days. A period (1e9 / rate ns) is then at most 1e15 ns, so a time plus a period
#: fits 64 bits too (a rate of 1e-300 Hz made a period of infinite ns).
MIN_RATE_HZ = 1e-6


@dataclass(frozen=True)
class Header:
    """Facts about the whole recording, written once, first."""

    flamekit_version: str
    start_wall_ns: int  #: wall-clock time of the start, ns since the Unix epoch
    start_monotonic_ns: int  #: CLOCK_MONOTONIC at the start: the origin of sample times
    rate_hz: float  #: requested sampling rate
    pid: int
    cmdline: tuple[str, ...] = ()
    python_version: str = ""
    hostname: str = ""
    kernel: str = ""
    #: mode flags: pausing (vs nonblocking), gil_only, subprocesses, ...
    mode: dict[str, bool] = field(default_factory=dict)
    format_version: tuple[int, int] = (FORMAT_MAJOR, FORMAT_MINOR)

    def __hash__(self) -> int:  # mode is a dict; headers are compared, rarely hashed
        return hash((self.flamekit_version, self.start_wall_ns, self.pid))


@dataclass(frozen=True, **_SLOTS)
class Thread:
    """A thread first seen (or renamed: a later record with the same ref replaces it)."""

    ref: int  #: the id samples use for this thread
    pid: int
    native_tid: int | None  #: the kernel's thread id
    py_thread_id: int | None  #: threading.get_ident() in the target
    name: str | None
    first_seen_ns: int  #: ns since the header's monotonic origin
    #: the thread's id in the target's own PID namespace (a container's), where it is
    #: not ``native_tid`` (format 1.2; None when it is, and in older files)
    ns_tid: int | None = None


@dataclass(frozen=True)
class Code:
    """One code object's contents, enough to symbolize offline.

    ``ref`` is unique within the file; ``address`` is the object's address in the target,
    which a later code object can reuse after the first is freed: it then gets a new ref.
    """

    __slots__ = (
        "ref", "pid", "address", "name", "qualname", "filename", "firstlineno", "linetable",
        "linetable_format",
    )  # fmt: skip

    ref: int
    pid: int
    address: int
    name: str
    qualname: str | None
    filename: str
    firstlineno: int
    linetable: bytes
    linetable_format: int


class Frames(Sequence[tuple[int, int]]):
    """A decoded stack's frames, innermost first, as (code ref, offset) pairs in two typed
    arrays: 16 bytes a frame. As a tuple of pairs a frame cost about 90 (a 32 MB trace of
    deep stacks took 880 MB to load); it reads like that tuple, and compares equal to it.
    """

    __slots__ = ("codes", "offsets")

    def __init__(self, codes: array, offsets: array) -> None:
        self.codes = codes
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[tuple[int, int], ...]: ...

    def __getitem__(self, i: int | slice) -> tuple[int, int] | tuple[tuple[int, int], ...]:
        if isinstance(i, slice):
            return tuple(zip(self.codes[i], self.offsets[i]))
        return self.codes[i], self.offsets[i]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.codes, self.offsets)

    def __reversed__(self) -> Iterator[tuple[int, int]]:
        return zip(reversed(self.codes), reversed(self.offsets))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Frames):
            return self.codes == other.codes and self.offsets == other.offsets
        if isinstance(other, Sequence):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Frames({tuple(self)!r})"


@dataclass(frozen=True)
class Stack:
    """An interned stack: frames innermost (leaf) first, each (code ref, instruction offset).

    The recorder writes tuples; the reader gives :class:`Frames`, which reads alike."""

    __slots__ = ("id", "frames")

    id: int
    frames: Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Samples:
    """A batch of samples packed as varints (see flamekit.trace.samplecodec)."""

    blob: bytes


@dataclass(frozen=True, **_SLOTS)
class Process:
    """A process taking part in the recording (the target, or a subprocess of it), running
    one program: an exec starts another (a PROCESS_END ``exec``, then a PROCESS record of
    the same pid), and so does a pid that comes back for a new process."""

    pid: int
    ppid: int
    cmdline: tuple[str, ...]
    first_seen_ns: int
    #: "3.12.1" for a CPython the recorder reads; None for a process it only watches (a
    #: shell between two Pythons) or did not record (format 1.2; None in older files)
    python_version: str | None = None
    #: when the process started, ns on the header's monotonic clock (before the recording
    #: began: negative); None if unknown (format 1.2)
    start_ns: int | None = None


#: How a process run ended (PROCESS_END's ``how``).
PROCESS_ENDINGS = ("exited", "killed", "exec", "recording-ended", "lost")


@dataclass(frozen=True)
class ProcessEnd:
    """The end of the last process run of ``pid`` (format 1.2)."""

    pid: int
    end_ns: int  #: when it was seen to end, ns since the header's monotonic origin
    #: exited (``status`` its exit code), killed (``status`` the signal), exec (it went on
    #: as another program: the next PROCESS record of this pid), recording-ended (still
    #: running when the recording ended), lost (the recorder could not follow it)
    how: str
    status: int | None = None


@dataclass(frozen=True)
class End:
    """The last record of a complete recording."""

    reason: str
    error: str | None
    samples: int
    errors: int  #: sampling errors (a stack that could not be read), counted not fatal
    duration_ns: int
    #: samples whose pause reached the recorder's bound (--max-pause) and let the target
    #: go before every stack was read (format 1.1; 0 in older files)
    cut_pauses: int = 0


@dataclass(frozen=True)
class NativeObject:
    """An ELF object loaded in a process recorded with ``--native`` (format 1.3): what
    symbolizing its frames offline needs, written when the recorder first sees it."""

    pid: int
    path: str  #: as the target named it (/proc/PID/maps)
    build_id: bytes | None  #: the GNU build id, the best way to find the file again
    bias: int  #: link-time address + bias = address in the target
    #: the mappings as the target saw them: (start, end, file offset, perms)
    ranges: tuple[tuple[int, int, int, str], ...]
    first_seen_ns: int


@dataclass(frozen=True)
class NativeStack:
    """An interned native stack (format 1.3): raw instruction pointers, innermost first
    (the first the thread's pc, the others return addresses). ``cut``: the unwind
    stopped before the outermost frame (a bound, or a frame it could not follow)."""

    id: int
    ips: tuple[int, ...]
    cut: bool
    #: where each evaluation call's frames end in the Python stack sampled with it,
    #: innermost call first (3.11+; None: not recorded, as before they were)
    eval_ends: tuple[int, ...] | None = None


@dataclass(frozen=True)
class NativeSamples:
    """The native stack ids of the samples of the SAMPLES record just before it, one
    varint each, in the same order (format 1.3): 0 = no native stack read."""

    blob: bytes


Record = Union[
    Header, Thread, Code, Stack, Samples, Process, ProcessEnd, End, NativeObject, NativeStack,
    NativeSamples,
]  # fmt: skip


def encode(rec: Record) -> list[Any]:
    """The msgpack-ready array for a record."""
    if isinstance(rec, Samples):
        return [SAMPLES, rec.blob]
    if isinstance(rec, Stack):
        flat: list[int] = []
        for code_ref, offset in rec.frames:
            flat.append(code_ref)
            flat.append(offset)
        return [STACK, rec.id, flat]
    if isinstance(rec, Code):
        return [
            CODE,
            rec.ref,
            rec.pid,
            rec.address,
            rec.name,
            rec.qualname,
            rec.filename,
            rec.firstlineno,
            rec.linetable,
            rec.linetable_format,
        ]
    if isinstance(rec, Thread):
        arr = [
            THREAD,
            rec.ref,
            rec.pid,
            rec.native_tid,
            rec.py_thread_id,
            rec.name,
            rec.first_seen_ns,
        ]
        if rec.ns_tid is not None:  # only a containerized target's threads have one
            arr.append(rec.ns_tid)
        return arr
    if isinstance(rec, Header):
        return [
            HEADER,
            {
                "format_version": list(rec.format_version),
                "flamekit_version": rec.flamekit_version,
                "start_wall_ns": rec.start_wall_ns,
                "start_monotonic_ns": rec.start_monotonic_ns,
                "rate_hz": float(rec.rate_hz),
                "pid": rec.pid,
                "cmdline": list(rec.cmdline),
                "python_version": rec.python_version,
                "hostname": rec.hostname,
                "kernel": rec.kernel,
                "mode": dict(rec.mode),
            },
        ]
    if isinstance(rec, Process):
        return [
            PROCESS, rec.pid, rec.ppid, list(rec.cmdline), rec.first_seen_ns,
            rec.python_version, rec.start_ns,
        ]  # fmt: skip
    if isinstance(rec, ProcessEnd):
        return [PROCESS_END, rec.pid, rec.end_ns, rec.how, rec.status]
    if isinstance(rec, NativeSamples):
        return [NATIVE_SAMPLES, rec.blob]
    if isinstance(rec, NativeStack):
        tail = [] if rec.eval_ends is None else [list(rec.eval_ends)]
        return [NATIVE_STACK, rec.id, list(rec.ips), rec.cut, *tail]
    if isinstance(rec, NativeObject):
        return [
            NATIVE_OBJECT, rec.pid, rec.path, rec.build_id, rec.bias,
            [list(r) for r in rec.ranges], rec.first_seen_ns,
        ]  # fmt: skip
    if isinstance(rec, End):
        return [
            END, rec.reason, rec.error, rec.samples, rec.errors, rec.duration_ns, rec.cut_pauses
        ]  # fmt: skip
    raise TypeError(f"not an FKT record: {rec!r}")


# -- decoding: strict types, clear messages -------------------------------------------


class _Bad(Exception):
    """A field of the wrong type or range; the reader adds where it was."""


def _int(v: Any, what: str, lo: int = 0, hi: int = U64_MAX) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise _Bad(f"{what} must be an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def _time(v: Any, what: str) -> int:
    """A time since the recording's origin, in ns: [0, MAX_TIME_NS)."""
    return _int(v, what, 0, MAX_TIME_NS - 1)


def _opt_int(v: Any, what: str) -> int | None:
    return None if v is None else _int(v, what)


def _str(v: Any, what: str, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if type(v) is not str:
        raise _Bad(f"{what} must be a string, got {_short(v)}")
    return v


def _strs(v: Any, what: str) -> tuple[str, ...]:
    if type(v) is not list or any(type(s) is not str for s in v):
        raise _Bad(f"{what} must be a list of strings")
    return tuple(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _need(arr: list[Any], n: int, kind: str) -> None:
    if len(arr) < n:
        raise _Bad(f"{kind} record has {len(arr)} fields, needs {n}")


def _header(arr: list[Any]) -> Header:
    _need(arr, 2, "header")
    m = arr[1]
    if type(m) is not dict:
        raise _Bad("header must be a map")
    ver = m.get("format_version")
    if type(ver) is not list or len(ver) != 2:
        raise _Bad("header.format_version must be [major, minor]")
    rate = m.get("rate_hz")
    if type(rate) not in (int, float) or not (rate == 0 or MIN_RATE_HZ <= rate < math.inf):
        raise _Bad(f"header.rate_hz must be 0 or finite and >= {MIN_RATE_HZ:g}, got {_short(rate)}")
    mode = m.get("mode", {})
    if type(mode) is not dict or any(
        type(k) is not str or type(v) is not bool for k, v in mode.items()
    ):
        raise _Bad("header.mode must map names to booleans")
    return Header(
        format_version=(
            _int(ver[0], "format major", 0, 65535),
            _int(ver[1], "format minor", 0, 65535),
        ),
        flamekit_version=_str(m.get("flamekit_version"), "header.flamekit_version"),
        start_wall_ns=_int(
            m.get("start_wall_ns"), "header.start_wall_ns", -MAX_TIME_NS, MAX_TIME_NS
        ),
        start_monotonic_ns=_int(m.get("start_monotonic_ns"), "header.start_monotonic_ns"),
        rate_hz=float(rate),
        pid=_int(m.get("pid"), "header.pid"),
        cmdline=_strs(m.get("cmdline", []), "header.cmdline"),
        python_version=_str(m.get("python_version", ""), "header.python_version"),
        hostname=_str(m.get("hostname", ""), "header.hostname"),
        kernel=_str(m.get("kernel", ""), "header.kernel"),
        mode=dict(mode),
    )


def _thread(arr: list[Any]) -> Thread:
    _need(arr, 7, "thread")
    return Thread(
        ref=_int(arr[1], "thread ref", 0, 1 << 30),
        pid=_int(arr[2], "thread pid"),
        native_tid=_opt_int(arr[3], "thread native tid"),
        py_thread_id=_opt_int(arr[4], "thread python id"),
        name=_str(arr[5], "thread name", optional=True),
        first_seen_ns=_time(arr[6], "thread first-seen time"),
        ns_tid=_opt_int(arr[7], "thread namespace tid") if len(arr) > 7 else None,
    )


def _code(arr: list[Any]) -> Code:
    _need(arr, 10, "code")
    table = arr[8]
    if type(table) is not bytes:
        raise _Bad("code line table must be bytes")
    if len(table) > MAX_LINETABLE:
        raise _Bad(f"code line table of {len(table):,} bytes, over the format's {MAX_LINETABLE:,}")
    fmt = _int(arr[9], "code line-table format", 0, 255)
    if fmt not in ALL_FORMATS:
        # An unknown table format from a newer writer: keep the code, lose its lines.
        fmt, table = 0, b""
    return Code(
        ref=_int(arr[1], "code ref", 0, 1 << 40),
        pid=_int(arr[2], "code pid"),
        address=_int(arr[3], "code address"),
        name=_str(arr[4], "code name"),
        qualname=_str(arr[5], "code qualname", optional=True),
        filename=_str(arr[6], "code filename"),
        firstlineno=_int(arr[7], "code first line", -(1 << 31), 1 << 31),
        linetable=table,
        linetable_format=fmt,
    )


def _stack(arr: list[Any]) -> Stack:
    _need(arr, 3, "stack")
    sid = _int(arr[1], "stack id", 1, 1 << 40)
    flat = arr[2]
    if type(flat) is not list or len(flat) % 2:
        raise _Bad("stack frames must be a flat list of (code ref, offset) pairs")
    if len(flat) > 2 * MAX_STACK_DEPTH:
        raise _Bad(
            f"stack {sid} has {len(flat) // 2:,} frames, over the format's {MAX_STACK_DEPTH:,}"
        )
    codes, offsets = flat[0::2], flat[1::2]
    _ints(codes, "stack code ref", 0, 1 << 40)
    _ints(offsets, "stack offset", -(1 << 31), 1 << 31)
    return Stack(sid, Frames(array("q", codes), array("q", offsets)))


def _ints(vs: list[Any], what: str, lo: int, hi: int) -> None:
    """Every element an integer in [lo, hi]: checked in C-speed passes, not one by one
    (a stack holds up to 65,536 frames)."""
    if not vs:
        return
    if set(map(type, vs)) != {int}:  # a bool, a float or a nil among them
        _int(next(v for v in vs if type(v) is not int), what, lo, hi)
    small, big = min(vs), max(vs)
    _int(small, what, lo, hi)
    _int(big, what, lo, hi)


def _samples(arr: list[Any]) -> Samples:
    _need(arr, 2, "samples")
    if type(arr[1]) is not bytes:
        raise _Bad("samples must be bytes")
    return Samples(arr[1])


def _process(arr: list[Any]) -> Process:
    _need(arr, 5, "process")
    start = arr[6] if len(arr) > 6 else None
    return Process(
        _int(arr[1], "process pid"),
        _int(arr[2], "process ppid"),
        _strs(arr[3], "process cmdline"),
        _time(arr[4], "process first-seen time"),
        _str(arr[5], "process python version", optional=True) if len(arr) > 5 else None,
        None if start is None else _int(start, "process start time", -MAX_TIME_NS, MAX_TIME_NS),
    )


def _process_end(arr: list[Any]) -> ProcessEnd:
    _need(arr, 5, "process end")
    how = arr[3]
    if type(how) is not str or how not in PROCESS_ENDINGS:
        raise _Bad(
            f"process end how must be one of {', '.join(PROCESS_ENDINGS)}, got {_short(how)}"
        )
    status = arr[4]
    return ProcessEnd(
        _int(arr[1], "process end pid"),
        _time(arr[2], "process end time"),
        how,
        None if status is None else _int(status, "process end status", -(1 << 31), 1 << 31),
    )


def _end(arr: list[Any]) -> End:
    _need(arr, 6, "end")
    reason = _str(arr[1], "end reason")
    return End(
        reason,
        _str(arr[2], "end error", optional=True),
        _int(arr[3], "end samples"),
        _int(arr[4], "end errors"),
        _time(arr[5], "end duration"),
        _int(arr[6], "end cut pauses") if len(arr) > 6 else 0,
    )


def _native_object(arr: list[Any]) -> NativeObject:
    _need(arr, 7, "native object")
    bid = arr[3]
    if bid is not None and type(bid) is not bytes:
        raise _Bad("native object build id must be bytes or nil")
    ranges = arr[5]
    if type(ranges) is not list:
        raise _Bad("native object ranges must be a list")
    spans = []
    for r in ranges:
        if type(r) is not list or len(r) < 4 or type(r[3]) is not str:
            raise _Bad("a native object range must be [start, end, offset, perms]")
        spans.append(
            (_int(r[0], "range start"), _int(r[1], "range end"), _int(r[2], "range offset"), r[3])
        )
    return NativeObject(
        _int(arr[1], "native object pid"),
        _str(arr[2], "native object path"),
        bid,
        _int(arr[4], "native object bias", -(1 << 63), U64_MAX),
        tuple(spans),
        _time(arr[6], "native object first-seen time"),
    )


def _native_stack(arr: list[Any]) -> NativeStack:
    _need(arr, 4, "native stack")
    sid = _int(arr[1], "native stack id", 1, 1 << 40)
    ips = arr[2]
    if type(ips) is not list:
        raise _Bad("native stack addresses must be a list")
    if len(ips) > MAX_STACK_DEPTH:
        raise _Bad(f"native stack {sid} has {len(ips):,} frames, over {MAX_STACK_DEPTH:,}")
    _ints(ips, "native stack address", 0, U64_MAX)
    if type(arr[3]) is not bool:
        raise _Bad("native stack cut must be a boolean")
    ends = None
    if len(arr) > 4 and arr[4] is not None:
        if type(arr[4]) is not list or len(arr[4]) > MAX_STACK_DEPTH:
            raise _Bad("native stack eval ends must be a list")
        _ints(arr[4], "native stack eval end", 0, MAX_STACK_DEPTH)
        ends = tuple(arr[4])
    return NativeStack(sid, tuple(ips), arr[3], ends)


def _native_samples(arr: list[Any]) -> NativeSamples:
    _need(arr, 2, "native samples")
    if type(arr[1]) is not bytes:
        raise _Bad("native samples must be bytes")
    return NativeSamples(arr[1])


DECODERS = {
    HEADER: _header,
    THREAD: _thread,
    CODE: _code,
    STACK: _stack,
    SAMPLES: _samples,
    PROCESS: _process,
    PROCESS_END: _process_end,
    END: _end,
    NATIVE_OBJECT: _native_object,
    NATIVE_STACK: _native_stack,
    NATIVE_SAMPLES: _native_samples,
}


def decode(obj: Any) -> Record | None:
    """The record for a decoded msgpack object; None for a kind this reader doesn't know.

    Raises _Bad (caught by the reader, which names the file and offset) for a known kind
    with the wrong shape.
    """
    if type(obj) is not list or not obj:
        raise _Bad(f"a record must be a non-empty array, got {_short(obj)}")
    kind = obj[0]
    if type(kind) is not int:
        raise _Bad(f"record kind must be an integer, got {_short(kind)}")
    fn = DECODERS.get(kind)
    return fn(obj) if fn else None
