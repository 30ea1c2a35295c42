"""Streaming FKT writer: records are appended as they happen, samples in small batches.

A recording can be cut off at any moment (recorder killed, disk full), so nothing is
held back longer than one batch: the file on disk is always a valid FKT prefix.
"""

from __future__ import annotations

import struct
import time
from typing import BinaryIO, Protocol

import msgpack

from flamekit.trace import records as R
from flamekit.trace.samplecodec import FLAG_GIL, FLAG_IDLE, pack_sample, pack_varint


def preamble(major: int = R.FORMAT_MAJOR, minor: int = R.FORMAT_MINOR) -> bytes:
    """The fixed bytes every FKT file starts with."""
    return R.MAGIC + struct.pack("<HH", major, minor)


class TraceWriter:
    """Writes one FKT stream to a binary file object it does not own.

    Stacks are interned here (frames -> stack id); code and thread refs are the
    caller's, since only the recorder knows when a code address was reused.
    """

    def __init__(
        self,
        out: BinaryIO,
        header: R.Header,
        *,
        batch_samples: int = 512,
        flush_interval_s: float = 0.25,
    ) -> None:
        self._out = out
        self._packer = msgpack.Packer(use_bin_type=True)
        self._stacks: dict[tuple[tuple[int, int], ...], int] = {(): R.EMPTY_STACK}
        #: One shared object per distinct (code ref, offset): a recursive or long-running
        #: target makes tens of thousands of stacks out of a few hundred frames, and each
        #: interned stack holding its own frame tuples cost ~110 bytes a frame (58 MB after
        #: 30 minutes of a churning target); shared, a stack costs 8 bytes a frame.
        self._frames: dict[tuple[int, int], tuple[int, int]] = {}
        self._batch = bytearray()
        self._batch_count = 0
        #: --native: the native stack ids of the batch's samples (a NATIVE_SAMPLES record
        #: after its SAMPLES), and the native stacks interned
        self._native_batch = bytearray()
        self._native_stacks: dict[tuple[tuple[int, ...], bool, tuple[int, ...]], int] = {}
        self._batch_limit = batch_samples
        self._flush_interval = flush_interval_s
        self._last_flush = time.monotonic()
        self._last_t = header.start_monotonic_ns
        self.origin_ns = header.start_monotonic_ns
        self.samples = 0
        self.closed = False
        out.write(preamble(*header.format_version))
        self.write(header)

    def write(self, rec: R.Record) -> None:
        """Append one record (samples still batched are written first, to keep order)."""
        if self._batch_count:
            self._flush_batch()
        self._out.write(self._packer.pack(R.encode(rec)))

    def stack_id(self, frames: tuple[tuple[int, int], ...]) -> int:
        """The id of an interned stack, writing its STACK record the first time."""
        sid = self._stacks.get(frames)
        if sid is None:
            sid = len(self._stacks)
            shared = self._frames.setdefault
            self._stacks[tuple([shared(f, f) for f in frames])] = sid
            self.write(R.Stack(sid, frames))
        return sid

    def native_stack_id(
        self, ips: tuple[int, ...], cut: bool, eval_ends: tuple[int, ...] = ()
    ) -> int:
        """The id of an interned native stack with the eval ends of the Python stack
        sampled with it, writing its NATIVE_STACK record the first time (ids count from
        1; 0 is "no native stack")."""
        key = (ips, cut, eval_ends)
        nid = self._native_stacks.get(key)
        if nid is None:
            nid = self._native_stacks[key] = len(self._native_stacks) + 1
            self.write(R.NativeStack(nid, ips, cut, eval_ends or None))
        return nid

    def native_sample(
        self, t_ns: int, thread_ref: int, stack_id: int, native_id: int, gil: bool, idle: bool
    ) -> None:
        """A sample with its native stack (``record --native``): every sample of such a
        recording comes this way, so the NATIVE_SAMPLES record of a batch has one id per
        sample of its SAMPLES record. Define the native stack (:meth:`native_stack_id`)
        before, never between the two."""
        pack_varint(self._native_batch, native_id)
        self.sample(t_ns, thread_ref, stack_id, gil=gil, idle=idle)

    def sample(
        self, t_ns: int, thread_ref: int, stack_id: int, *, gil: bool = False, idle: bool = False
    ) -> None:
        """Add a sample taken at monotonic time ``t_ns`` (ns, same clock as the header)."""
        dt = t_ns - self._last_t
        if dt < 0:  # clocks don't run backwards, but a caller's times might interleave
            dt = 0
        else:
            self._last_t = t_ns
        pack_sample(
            self._batch,
            dt,
            thread_ref,
            (FLAG_GIL if gil else 0) | (FLAG_IDLE if idle else 0),
            stack_id,
        )
        self._batch_count += 1
        self.samples += 1
        if self._batch_count >= self._batch_limit:
            self._flush_batch()

    def tick(self) -> None:
        """Write out a batch older than the flush interval; call this now and then."""
        if self._batch_count and time.monotonic() - self._last_flush >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write pending samples and flush the file object."""
        if self._batch_count:
            self._flush_batch()
        self._out.flush()
        self._last_flush = time.monotonic()

    def close(
        self,
        reason: str,
        *,
        error: str | None = None,
        errors: int = 0,
        end_ns: int | None = None,
        cut_pauses: int = 0,
    ) -> None:
        """Write the END record that marks the file complete, and flush."""
        if self.closed:
            return
        end_t = self._last_t if end_ns is None else max(end_ns, self._last_t)
        self.write(R.End(reason, error, self.samples, errors, end_t - self.origin_ns, cut_pauses))
        self.flush()
        self.closed = True

    def _flush_batch(self) -> None:
        self._out.write(self._packer.pack([R.SAMPLES, bytes(self._batch)]))
        self._batch.clear()
        self._batch_count = 0
        if self._native_batch:
            self._out.write(self._packer.pack([R.NATIVE_SAMPLES, bytes(self._native_batch)]))
            self._native_batch.clear()


class TraceObserver(Protocol):
    """Sees a recording as it is written: every record and every sample, in order.

    What a live view (``flamekit top -p``) builds its picture from; it sees exactly what
    the trace gets, so what it shows and what ``-o`` keeps are one recording."""

    def record(self, rec: R.Record) -> None: ...

    def sample(self, t_ns: int, thread_ref: int, stack_id: int, gil: bool, idle: bool) -> None: ...


class ObservedWriter(TraceWriter):
    """A :class:`TraceWriter` that also hands every record and sample to an observer.

    A subclass rather than a hook tested in :meth:`TraceWriter.sample`: a recording
    nobody watches keeps the plain writer and pays nothing per sample for the option."""

    def __init__(self, out: BinaryIO, header: R.Header, observer: TraceObserver) -> None:
        self._observer = observer  # before the base writes the header through write()
        super().__init__(out, header)

    def write(self, rec: R.Record) -> None:
        super().write(rec)
        self._observer.record(rec)

    def sample(
        self, t_ns: int, thread_ref: int, stack_id: int, *, gil: bool = False, idle: bool = False
    ) -> None:
        super().sample(t_ns, thread_ref, stack_id, gil=gil, idle=idle)
        self._observer.sample(t_ns, thread_ref, stack_id, gil, idle)
