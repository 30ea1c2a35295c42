"""Packing samples into SAMPLES records: three unsigned LEB128 varints per sample.

Per sample: the time since the previous sample in ns, ``thread_ref << 2 | gil << 1 |
idle``, and the stack id. A steady 100-1000 Hz recording needs 3-4 bytes for the time
and one or two for each of the others, which keeps a sample under 8 bytes with its
own timestamp intact.
"""

from __future__ import annotations

from array import array
from itertools import accumulate, islice

from flamekit.errors import TraceError
from flamekit.trace.records import MAX_TIME_NS

FLAG_IDLE = 1
FLAG_GIL = 2


def _varint(out: bytearray, v: int) -> None:
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


pack_varint = _varint


def pack_sample(out: bytearray, dt_ns: int, thread_ref: int, flags: int, stack_id: int) -> None:
    """Append one sample; ``flags`` is FLAG_GIL | FLAG_IDLE bits."""
    _varint(out, dt_ns)
    _varint(out, (thread_ref << 2) | flags)
    _varint(out, stack_id)


def unpack_ids(blob: bytes) -> list[int]:
    """Decode a blob of varints (a NATIVE_SAMPLES record's native stack ids)."""
    vals: list[int] = []
    if _decode(blob, vals, (0, 0, 0), "a native stack id")[1]:
        raise TraceError("a native samples record ends in the middle of a varint")
    return vals


def _decode(
    piece: bytes, vals: list[int], state: tuple[int, int, int], what: str
) -> tuple[int, int, int]:
    """Append the varints ``piece`` completes to ``vals``; ``state`` (value, shift, bytes)
    carries a varint cut between two pieces, and the state returned the one cut at its end."""
    v, shift, nbytes = state
    for b in piece:
        v |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
            nbytes += 1
            if nbytes >= _MAX_VARINT_BYTES:
                raise TraceError(f"{what} is longer than any valid varint")
        else:
            vals.append(v)
            v = shift = nbytes = 0
    return v, shift, nbytes


class SampleColumns:
    """Decoded samples as parallel typed arrays: 21 bytes a sample (8 of time, 4 of thread,
    1 of flags, 8 of stack id), the least a sample's facts fit in.

    ``time`` is the running sum of the samples' ``dt``: ns since the header's origin.
    """

    __slots__ = ("time", "thread", "flags", "stack")

    def __init__(self) -> None:
        self.time = array("q")
        self.thread = array("I")
        self.flags = array("B")
        self.stack = array("Q")

    def __len__(self) -> int:
        return len(self.time)


#: Varints longer than this cannot come from a valid writer (values stay below 2**63).
_MAX_VARINT_BYTES = 9
#: A thread ref is at most 2**30 (the THREAD record's cap): what the thread column holds.
MAX_THREAD_REF = 1 << 30
#: Blob bytes decoded before their samples move into the columns: a SAMPLES record may hold
#: 16 MiB, and its values as one Python list took 300 MB.
_PIECE = 1 << 16


def unpack_into(blob: bytes, cols: SampleColumns) -> int:
    """Decode a SAMPLES blob onto ``cols``; returns the number of samples.

    A blob that ends inside a sample, holds a varint too long to be valid, a thread ref no
    THREAD record can have, or times at or past the format's MAX_TIME_NS (2**62 ns, 146
    years) raises TraceError: the writer never produces any of these, so it is corruption.
    """
    n0 = len(cols)
    vals: list[int] = []
    state = (0, 0, 0)
    for at in range(0, len(blob), _PIECE):
        state = _decode(blob[at : at + _PIECE], vals, state, "a sample value")
        whole = len(vals) - len(vals) % 3
        _extend(cols, vals[:whole])
        del vals[:whole]
    if state[1] or vals:
        raise TraceError("a samples record ends in the middle of a sample")
    return len(cols) - n0


_OVERFLOW = "sample times overflow the format's limit (2**62 ns since the start, 146 years)"


def _extend(cols: SampleColumns, vals: list[int]) -> None:
    """Append whole samples (dt, thread << 2 | flags, stack id triples) to the columns."""
    if not vals:
        return
    tf = vals[1::3]
    threads = [x >> 2 for x in tf]
    top = max(threads)
    if top > MAX_THREAD_REF:
        i = len(cols) + threads.index(top)
        raise TraceError(f"sample {i} refers to undefined thread {top}")
    last = cols.time[-1] if cols.time else 0
    try:
        cols.time.extend(islice(accumulate(vals[0::3], initial=last), 1, None))
    except OverflowError:  # past 2**63 - 1: the column's own limit
        raise TraceError(_OVERFLOW) from None
    if cols.time[-1] >= MAX_TIME_NS:  # times never decrease: the last is the latest
        raise TraceError(_OVERFLOW)
    cols.thread.extend(threads)
    cols.flags.extend([x & 3 for x in tf])
    cols.stack.extend(vals[2::3])
