"""Source lines for native frames (``--native-lines``), from an object's DWARF line table.

Off by default: an object built with ``-g`` carries ``.debug_line``, and pyelftools
decodes it at some tens of microseconds a row (a whole libpython is seconds). So only
the compile units that hold a sampled address are decoded: ``.debug_aranges`` says which
unit covers an address, and each unit's rows are decoded once, sorted, and bisected.
An object without aranges has its units' address ranges read from their DIEs instead.
Objects without DWARF (most wheels, distribution builds whose debug files are not
installed) give no line: their frames stay function-level, never a guessed line.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from typing import BinaryIO

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError
from elftools.dwarf.dwarfinfo import DWARFInfo
from elftools.elf.elffile import ELFFile

_ERRORS = (ELFError, DWARFError, ConstructError, ValueError, KeyError, IndexError, EOFError,
           OSError, AssertionError, TypeError, AttributeError)  # fmt: skip


class _Unit:
    """One compile unit's rows: sorted addresses, and (file, line) or None at each (the
    end of a sequence: no line from there on)."""

    __slots__ = ("addresses", "places")

    def __init__(self, rows: list[tuple[int, tuple[str, int] | None]]) -> None:
        rows.sort(key=lambda r: r[0])
        self.addresses = [a for a, _ in rows]
        self.places = [p for _, p in rows]

    def at(self, address: int) -> tuple[str, int] | None:
        i = bisect_right(self.addresses, address) - 1
        return self.places[i] if i >= 0 else None


def _unit_rows(dwarf: DWARFInfo, cu) -> list[tuple[int, tuple[str, int] | None]]:  # noqa: ANN001
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return []
    header = program.header
    files = header["file_entry"]
    dirs = header["include_directory"]
    v5 = header["version"] >= 5
    comp = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
    comp_dir = comp.value.decode("utf-8", "replace") if comp is not None else ""

    def name(index: int) -> str:
        """The file's path as addr2line gives it: joined to its directory, and a relative
        one to the unit's compilation directory."""
        k = index if v5 else index - 1
        if not 0 <= k < len(files):
            return "?"
        entry = files[k]
        path = entry.name.decode("utf-8", "replace")
        d = entry.dir_index if v5 else entry.dir_index - 1
        if not os.path.isabs(path) and 0 <= d < len(dirs):
            path = os.path.join(dirs[d].decode("utf-8", "replace"), path)
        if not os.path.isabs(path) and comp_dir:
            path = os.path.join(comp_dir, path)
        return path

    names: dict[int, str] = {}
    rows: list[tuple[int, tuple[str, int] | None]] = []
    for entry in program.get_entries():
        state = entry.state
        if state is None:
            continue
        if state.end_sequence:
            rows.append((state.address, None))
            continue
        f = names.get(state.file)
        if f is None:
            f = names[state.file] = name(state.file)
        rows.append((state.address, (f, state.line) if state.line > 0 else None))
    return rows


class LineTable:
    """The source lines of one object, by link-time address, decoded a unit at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._dwarf: DWARFInfo | None = None
        self._aranges = None
        self._spans: list[tuple[int, int, int]] | None = None  # (lo, hi, cu offset)
        self._units: dict[int, _Unit | None] = {}
        try:
            elf = ELFFile(stream)
            if elf.get_section_by_name(".debug_line") is not None:
                self._dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
                self._aranges = self._dwarf.get_aranges()
        except _ERRORS:
            self._dwarf = None

    @classmethod
    def read(cls, path: str) -> LineTable | None:
        """The table of the file at ``path``; None if it has no line information."""
        try:
            table = cls(open(path, "rb"))  # noqa: SIM115 - kept open for lazy reads
        except OSError:
            return None
        return table if table._dwarf is not None else None

    def _unit_offset(self, address: int) -> int | None:
        if self._aranges is not None:
            return self._aranges.cu_offset_at_addr(address)
        if self._spans is None:
            self._spans = []
            assert self._dwarf is not None
            for cu in self._dwarf.iter_CUs():
                top = cu.get_top_DIE()
                lo = top.attributes.get("DW_AT_low_pc")
                hi = top.attributes.get("DW_AT_high_pc")
                if lo is None or hi is None:
                    continue
                end = hi.value if hi.form == "DW_FORM_addr" else lo.value + hi.value
                self._spans.append((lo.value, end, cu.cu_offset))
        return next((off for lo, hi, off in self._spans if lo <= address < hi), None)

    def place(self, address: int) -> tuple[str, int] | None:
        """(source file, line) of a link-time address; None where no row says."""
        if self._dwarf is None:
            return None
        try:
            offset = self._unit_offset(address)
            if offset is None:
                return None
            unit = self._units.get(offset, False)
            if unit is False:
                cu = self._dwarf.get_CU_at(offset)
                rows = _unit_rows(self._dwarf, cu)
                unit = self._units[offset] = _Unit(rows) if rows else None
            return unit.at(address) if unit is not None else None
        except _ERRORS:
            return None
