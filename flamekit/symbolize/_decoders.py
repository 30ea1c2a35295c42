"""One decoder per line-table format, each turning a raw table into address ranges.

Why decoders produce ranges instead of answering one offset: CPython's own lookups walk the
table from the start for every query, which is fine inside the interpreter (one query per
traceback) but not for a converter resolving thousands of offsets that cluster in a few
hot code objects. Walking each table once into ranges makes every later lookup a bisect.

Every decoder here shares three rules, so a table read from an untrusted trace can only
cost time and memory linear in its length and never raises:

* A line that is negative or above :data:`MAX_LINE` is reported as ``None`` (unknown). Real
  code objects never produce one (CPython stores lines in a C ``int``; line 0 is real: 3.11+
  gives it to a module's ``RESUME``). The running line keeps counting, so a bogus
  intermediate value does not shift the lines after it.
* Where the table stops making sense (3.11+ only: a first byte that is not an entry header,
  a varint cut short or longer than any C ``int``), decoding stops. Offsets past that point
  get ``None``: every later line would be relative to a delta we could not read, and a
  wrong line is worse than a missing one.
* A trailing odd byte of the pair formats is ignored, as CPython's loops (``len // 2``
  pairs) do.

The decoders emit contiguous ranges starting at offset 0, already merged where neighbours
share a line; :mod:`flamekit.symbolize` relies on that for its bisect.
"""

from __future__ import annotations

from typing import Optional

#: The end of the last range of a table that does not know its code's length (lnotab and
#: "no table"): every non-negative offset CPython would accept falls below it.
OPEN_END = (1 << 63) - 1

#: Largest line a real code object can carry (a C ``int``).
MAX_LINE = (1 << 31) - 1

#: 3.11+ varints carry 6 bits a byte; six bytes (36 bits) cover any 32-bit value, so a
#: longer one is corruption, and refusing it keeps the arithmetic on small ints.
_MAX_VARINT_BYTES = 6

Range = tuple[int, int, Optional[int]]


class _Builder:
    """Collects contiguous ranges, merging a range into its predecessor on the same line."""

    __slots__ = ("starts", "ends", "lines")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.lines: list[int | None] = []

    def add(self, start: int, end: int, line: int | None) -> None:
        if end <= start:
            return
        if line is not None and not 0 <= line <= MAX_LINE:
            line = None
        if self.lines and self.lines[-1] == line and self.ends[-1] == start:
            self.ends[-1] = end
            return
        self.starts.append(start)
        self.ends.append(end)
        self.lines.append(line)


def decode_none(firstlineno: int, out: _Builder) -> None:
    """No table: the whole code object is its first line."""
    out.add(0, OPEN_END, firstlineno)


def decode_lnotab(table: bytes, firstlineno: int, signed: bool, out: _Builder) -> None:
    """``co_lnotab`` (2.7 unsigned, 3.6-3.9 signed line increments).

    A pair's line increment takes effect at the address reached *after* adding its address
    increment; that is how CPython's ``PyCode_Addr2Line`` reads the table (stop as soon as
    the running address passes the query). The table does not record the code's length,
    so the last line extends to :data:`OPEN_END`.
    """
    line = firstlineno
    start = 0
    addr = 0
    for addr_incr, line_incr in zip(table[0::2], table[1::2]):
        if addr_incr:
            addr += addr_incr
            out.add(start, addr, line)
            start = addr
        if signed and line_incr >= 0x80:
            line_incr -= 0x100
        line += line_incr
    out.add(start, OPEN_END, line)


def decode_linetable_310(table: bytes, firstlineno: int, out: _Builder) -> None:
    """3.10 ``co_linetable``: (byte span, signed line delta) pairs, -128 meaning no line.

    Zero-span pairs still move the line (that is how deltas beyond +-127 are spelled); the
    "no line" marker does not. Offsets past the last span belong to no instruction: None.
    """
    line = firstlineno
    end = 0
    for span, delta in zip(table[0::2], table[1::2]):
        start = end
        end += span
        if delta == 0x80:
            cur = None
        else:
            line += delta - 0x100 if delta > 0x80 else delta
            cur = line
        out.add(start, end, cur)


def decode_locations_311(table: bytes, firstlineno: int, out: _Builder) -> None:
    """3.11+ location table: variable-length entries, each covering 1-8 code units.

    Only the line matters here; column data is skipped. An entry is a header byte (bit 7
    set) and its payload (every following byte without bit 7), which is also how CPython
    steps from entry to entry, so a payload of an unexpected length is tolerated.
    """
    n = len(table)
    if n == 0 or table[0] < 0x80:
        return
    line = firstlineno
    addr = 0
    i = 0
    while i < n:
        header = table[i]
        j = i + 1
        while j < n and table[j] < 0x80:
            j += 1
        code = (header >> 3) & 15
        end = addr + ((header & 7) + 1) * 2
        if code == 15:  # no location
            out.add(addr, end, None)
        else:
            if code >= 13:  # 13 no columns, 14 long form: the line delta is a svarint
                value = 0
                shift = 0
                complete = False
                for k in range(i + 1, min(j, i + 1 + _MAX_VARINT_BYTES)):
                    byte = table[k]
                    value |= (byte & 63) << shift
                    shift += 6
                    if not byte & 64:
                        complete = True
                        break
                if not complete:
                    return
                line += -(value >> 1) if value & 1 else value >> 1
            elif code >= 10:  # one-line forms: delta 0, 1 or 2
                line += code - 10
            out.add(addr, end, line)
        addr = end
        i = j
