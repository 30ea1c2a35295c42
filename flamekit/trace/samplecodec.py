"""Packing samples into SAMPLES records: three unsigned LEB128 varints per sample.

Per sample: the time since the previous sample in ns, ``thread_ref << 2 | gil << 1 |
idle``, and the stack id. A steady 100-1000 Hz recording needs 3-4 bytes for the time
and one or two for each of the others, which keeps a sample under 8 bytes with its
own timestamp intact.
"""

from __future__ import annotations

from array import array

from flamekit.errors import TraceError

FLAG_IDLE = 1
FLAG_GIL = 2


def _varint(out: bytearray, v: int) -> None:
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def pack_sample(out: bytearray, dt_ns: int, thread_ref: int, flags: int, stack_id: int) -> None:
    """Append one sample; ``flags`` is FLAG_GIL | FLAG_IDLE bits."""
    _varint(out, dt_ns)
    _varint(out, (thread_ref << 2) | flags)
    _varint(out, stack_id)


class SampleColumns:
    """Decoded samples as parallel typed arrays (compact for millions of samples)."""

    __slots__ = ("dt", "thread", "flags", "stack")

    def __init__(self) -> None:
        self.dt = array("q")
        self.thread = array("L")
        self.flags = array("B")
        self.stack = array("Q")

    def __len__(self) -> int:
        return len(self.dt)


#: Varints longer than this cannot come from a valid writer (values stay below 2**63).
_MAX_VARINT_BYTES = 9


def unpack_into(blob: bytes, cols: SampleColumns) -> int:
    """Decode a SAMPLES blob onto ``cols``; returns the number of samples.

    A blob that ends inside a sample, or holds a varint too long to be valid, raises
    TraceError: the writer never produces either, so it is corruption.
    """
    vals = []
    v = shift = 0
    nbytes = 0
    for b in blob:
        v |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
            nbytes += 1
            if nbytes >= _MAX_VARINT_BYTES:
                raise TraceError("a sample value is longer than any valid varint")
        else:
            vals.append(v)
            v = shift = nbytes = 0
    if shift or len(vals) % 3:
        raise TraceError("a samples record ends in the middle of a sample")
    n = len(vals) // 3
    dts = vals[0::3]
    tf = vals[1::3]
    cols.dt.extend(dts)
    cols.thread.extend([x >> 2 for x in tf])
    cols.flags.extend([x & 3 for x in tf])
    cols.stack.extend(vals[2::3])
    return n
