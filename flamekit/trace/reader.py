"""Streaming FKT reader: iterates records without loading the file, with hard size limits.

A trace may come from anywhere, so every msgpack length is capped: a hostile file gets
a TraceError, not a multi-gigabyte allocation. A file that simply stops (the recorder
was killed) reads up to its last complete record and says so in ``truncated``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import msgpack

from flamekit.errors import TraceError
from flamekit.trace import records as R

CHUNK = 1 << 16
#: Caps on one record. The largest legitimate ones are a code object's line table and
#: a deep stack (up to 65,536 frames, 2 bytes to 13 each); samples batches hold at most a few thousand samples.
MAX_RECORD_BYTES = 32 << 20
MAX_STR = 1 << 20
MAX_BIN = 16 << 20
MAX_ARRAY = 1 << 20
MAX_MAP = 4096


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=MAX_RECORD_BYTES,
        max_str_len=MAX_STR,
        max_bin_len=MAX_BIN,
        max_array_len=MAX_ARRAY,
        max_map_len=MAX_MAP,
        max_ext_len=0,
        timestamp=0,
    )


def open_trace(path: str) -> BinaryIO:
    """Open a trace for reading, turning every OS failure into one clear TraceError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, not an FKT trace") from None
    except PermissionError:
        raise TraceError(f"{path}: permission denied (check the file's mode and owner)") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot open: {exc.strerror or exc}") from None


class TraceReader:
    """Iterate the records of one FKT file, in order.

    After iteration: ``truncated`` tells whether the file ended early (cut inside a
    record, or no END record), ``truncation`` says how, ``size`` is the bytes read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.format_version: tuple[int, int] | None = None
        self.truncated = False
        self.truncation = ""
        self.size = 0
        self.records = 0

    def _fail(self, what: str, offset: int | None = None) -> TraceError:
        where = f" at byte {offset}" if offset is not None else ""
        return TraceError(f"{self.path}: corrupt FKT trace{where}: {what}")

    def __iter__(self) -> Iterator[R.Record]:
        with open_trace(self.path) as f:
            try:
                yield from self._records(f)
            except OSError as exc:
                raise TraceError(f"{self.path}: read error: {exc.strerror or exc}") from None

    def _preamble(self, f: BinaryIO) -> None:
        head = f.read(R.PREAMBLE_SIZE)
        self.size = len(head)
        if not head:
            raise TraceError(f"{self.path}: empty file, not an FKT trace")
        if not head.startswith(R.MAGIC[: len(head)]) or (
            len(head) >= len(R.MAGIC) and head[: len(R.MAGIC)] != R.MAGIC
        ):
            raise TraceError(f"{self.path}: not an FKT trace (no FKT signature at the start)")
        if len(head) < R.PREAMBLE_SIZE:
            raise TraceError(f"{self.path}: truncated FKT trace: cut off before its header")
        major, minor = struct.unpack_from("<HH", head, len(R.MAGIC))
        if major != R.FORMAT_MAJOR:
            newer = "a newer" if major > R.FORMAT_MAJOR else "an unknown"
            raise TraceError(
                f"{self.path}: FKT format {major}.{minor} is from {newer} flamekit; this one reads "
                f"{R.FORMAT_MAJOR}.x (upgrade flamekit to read it)"
            )
        self.format_version = (major, minor)

    def _records(self, f: BinaryIO) -> Iterator[R.Record]:
        self._preamble(f)
        unpacker = _unpacker()
        base = R.PREAMBLE_SIZE
        fed = 0
        seen_end = False
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            try:
                unpacker.feed(chunk)
            except msgpack.BufferFull:
                raise self._fail(
                    f"a record is larger than {MAX_RECORD_BYTES} bytes", base + unpacker.tell()
                ) from None
            fed += len(chunk)
            self.size += len(chunk)
            while True:
                start = base + unpacker.tell()
                try:
                    obj = next(unpacker)
                except StopIteration:
                    break
                except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
                    raise self._fail(f"undecodable msgpack ({_reason(exc)})", start) from None
                try:
                    rec = R.decode(obj)
                except R._Bad as exc:
                    raise self._fail(str(exc), start) from None
                if self.records == 0 and not isinstance(rec, R.Header):
                    raise self._fail("the first record is not a header", start)
                if self.records and isinstance(rec, R.Header):
                    raise self._fail("a second header record", start)
                if seen_end:
                    raise self._fail("records after the end record", start)
                self.records += 1
                if rec is None:
                    continue  # a kind from a newer minor version: skip it
                if isinstance(rec, R.End):
                    seen_end = True
                yield rec
        consumed = unpacker.tell()
        if consumed < fed:
            self.truncated = True
            self.truncation = (
                f"cut off inside a record at byte {base + consumed} "
                f"({fed - consumed} bytes of it present)"
            )
        elif not seen_end:
            self.truncated = True
            self.truncation = "no end record (the recording did not finish)"
        if self.records == 0:
            raise TraceError(f"{self.path}: truncated FKT trace: cut off before its header")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
