"""Offline symbolization: (line table, format id, first line, instruction offset) -> line.

Why offline: the recorder copies each code object's raw line table and first line into
the trace once, and stores only (code ref, byte offset) per frame. Sampling stays cheap
and version-agnostic; all knowledge of CPython's line-table formats lives here, as pure
functions of bytes, testable against every interpreter without attaching to anything.

Why ranges: a converter resolves a few thousand distinct (code, offset) pairs, most of
them in a few hot code objects. Each table is decoded once into sorted, contiguous
``(start, end, line)`` byte ranges (:class:`LineTable`) and each lookup is a bisect, instead
of CPython's walk from the start of the table for every query.

Why ``None`` instead of errors: tables come from untrusted files. Decoding never raises,
takes time and memory linear in the table, and answers ``None`` where the table has no
(or no believable) line; the converter shows such frames without a line. The only inputs
that change this contract are programming errors (a ``table`` that is not bytes-like).

Conventions (see :mod:`flamekit.codeformat`):

* ``offset`` is a byte offset into the code object's bytecode (3.10: ``2 * f_lasti``;
  3.11+: instruction pointer minus the start of the inline bytecode).
* A negative offset is a frame that has not started: it maps to ``firstlineno``.
* An offset past the end of a 3.10+ table belongs to no instruction: ``None``. The lnotab
  formats and format 0 do not know the code's length, so their last line runs on
  (to :data:`OPEN_END`), as it does in CPython.
* A format id this version does not know is read as format 0 (every offset maps to
  ``firstlineno``), as the FKT spec tells readers to.
* Lines outside ``0..MAX_LINE`` are reported as ``None`` (line 0 is real: 3.11+ gives it
  to a module's first instruction).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable
from functools import lru_cache
from typing import Optional, Protocol

from flamekit.codeformat import (
    LINETABLE_310,
    LNOTAB_SIGNED,
    LNOTAB_UNSIGNED,
    LOCATIONS_311,
)
from flamekit.symbolize._decoders import (
    MAX_LINE,
    OPEN_END,
    _Builder,
    decode_linetable_310,
    decode_lnotab,
    decode_locations_311,
    decode_none,
)

__all__ = [
    "MAX_LINE",
    "OPEN_END",
    "LineRange",
    "LineTable",
    "Symbolizer",
    "decode",
    "line_for_offset",
    "line_ranges",
]

#: ``(start, end, line)``: byte offsets ``start <= offset < end`` map to ``line``
#: (``None``: no line).
LineRange = tuple[int, int, Optional[int]]


class LineTable:
    """One decoded line table: contiguous ranges from offset 0, answered by bisect."""

    __slots__ = ("firstlineno", "_starts", "_ends", "_lines", "_first")

    def __init__(
        self, firstlineno: int, starts: list[int], ends: list[int], lines: list[int | None]
    ) -> None:
        self.firstlineno = firstlineno
        self._starts = starts
        self._ends = ends
        self._lines = lines
        self._first = firstlineno if 0 <= firstlineno <= MAX_LINE else None

    def line(self, offset: int) -> int | None:
        """The line executing at byte ``offset`` (negative: not started -> first line)."""
        if offset < 0:
            return self._first
        i = bisect_right(self._starts, offset) - 1
        if i < 0 or offset >= self._ends[i]:
            return None
        return self._lines[i]

    @property
    def ranges(self) -> tuple[LineRange, ...]:
        """The ranges, sorted, contiguous from 0, neighbours on the same line merged."""
        return tuple(zip(self._starts, self._ends, self._lines))

    @property
    def end(self) -> int:
        """The first offset past the table (:data:`OPEN_END` for the lnotab formats)."""
        return self._ends[-1] if self._ends else 0

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"LineTable(firstlineno={self.firstlineno}, ranges={self.ranges!r})"


def decode(table: bytes, fmt: int, firstlineno: int) -> LineTable:
    """Decode ``table`` (in format ``fmt``) once; uncached, see :class:`Symbolizer`."""
    out = _Builder()
    if fmt == LOCATIONS_311:
        decode_locations_311(table, firstlineno, out)
    elif fmt == LINETABLE_310:
        decode_linetable_310(table, firstlineno, out)
    elif fmt == LNOTAB_SIGNED:
        decode_lnotab(table, firstlineno, True, out)
    elif fmt == LNOTAB_UNSIGNED:
        decode_lnotab(table, firstlineno, False, out)
    else:  # LINETABLE_NONE, and (as the FKT spec says) any id this version does not know
        decode_none(firstlineno, out)
    return LineTable(firstlineno, out.starts, out.ends, out.lines)


def line_ranges(table: bytes, fmt: int, firstlineno: int) -> tuple[LineRange, ...]:
    """All ``(start, end, line)`` ranges of a table (see :attr:`LineTable.ranges`)."""
    return _cached(bytes(table), fmt, firstlineno).ranges


def line_for_offset(table: bytes, fmt: int, firstlineno: int, offset: int) -> int | None:
    """The line at byte ``offset``; tables are decoded once (a bounded module-wide cache)."""
    return _cached(bytes(table), fmt, firstlineno).line(offset)


@lru_cache(maxsize=1024)
def _cached(table: bytes, fmt: int, firstlineno: int) -> LineTable:
    return decode(table, fmt, firstlineno)


class CodeLike(Protocol):
    """What :meth:`Symbolizer.line_for_code` needs (``flamekit.trace.records.Code`` fits)."""

    @property
    def linetable(self) -> bytes: ...

    @property
    def linetable_format(self) -> int: ...

    @property
    def firstlineno(self) -> int: ...


class Symbolizer:
    """Decoded tables for one trace, each decoded at most once.

    Two ways in: register tables under the caller's own code key (``add`` then ``line``),
    or hand over code records directly (``line_for_code``), which keys on the table
    contents so code objects with identical tables share one decoding. Unbounded by
    design: it holds what one trace's CODE records hold, and is dropped with the trace.
    """

    def __init__(self) -> None:
        self._pending: dict[Hashable, tuple[bytes, int, int]] = {}
        self._by_key: dict[Hashable, LineTable] = {}
        self._by_content: dict[tuple[bytes, int, int], LineTable] = {}

    def add(self, key: Hashable, table: bytes, fmt: int, firstlineno: int) -> None:
        """Register a code object's table under ``key``; decoding waits for its first lookup.

        Adding a key again replaces its table.
        """
        self._by_key.pop(key, None)
        self._pending[key] = (bytes(table), fmt, firstlineno)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key or key in self._pending

    def table(self, key: Hashable) -> LineTable:
        """The decoded table of ``key``. Raises ``KeyError`` for a key never added."""
        lt = self._by_key.get(key)
        if lt is None:
            lt = self._content(self._pending.pop(key))
            self._by_key[key] = lt
        return lt

    def line(self, key: Hashable, offset: int) -> int | None:
        """The line at byte ``offset`` of the code added as ``key`` (``KeyError`` if none)."""
        lt = self._by_key.get(key)
        if lt is None:
            lt = self.table(key)
        return lt.line(offset)

    def line_for_code(self, code: CodeLike, offset: int) -> int | None:
        """The line at byte ``offset`` of a code record; usable as a line resolver."""
        return self._content((code.linetable, code.linetable_format, code.firstlineno)).line(offset)

    def _content(self, content: tuple[bytes, int, int]) -> LineTable:
        lt = self._by_content.get(content)
        if lt is None:
            lt = self._by_content[content] = decode(*content)
        return lt
