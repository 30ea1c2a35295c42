"""Names for the raw addresses of native stacks (``record --native``), offline.

A NATIVE_OBJECT record says which ELF object held an address in the target, where it
was mapped and with what build id. Here the object is found again on this machine (by
build id first, in the debug directories' ``.build-id`` trees; then by the path the
target had, if its build id matches, or if the record has none), its function symbols
(``.symtab`` and ``.dynsym``) read once into a sorted table, and an address named by the
function whose [start, start + size) holds it. An object not found, or an address in no
sized symbol, is ``module+0xOFFSET`` (its offset in the file): never a wrong name.
"""

from __future__ import annotations

import io
import os
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from flamekit.symbolize.demangle import demangle
from flamekit.symbolize.native_lines import LineTable
from flamekit.symbolize.split_parts import fdes, split_parts
from flamekit.trace import records as R

#: Where distributions put separate debug files (``.build-id/xx/rest.debug``).
DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)
_PARSE_ERRORS = (ELFError, ConstructError, ValueError, OSError, KeyError, IndexError, EOFError)


VDSO = "[vdso]"


def own_vdso() -> bytes:
    """This process's vDSO image: a kernel's vDSO is in no file, but every process on one
    kernel maps the same one (the build ids tell), so a trace recorded on this kernel
    names its vDSO frames (``clock_gettime``) from ours."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if line.rstrip().endswith(VDSO):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    with open("/proc/self/mem", "rb") as mem:
                        mem.seek(lo)
                        return mem.read(hi - lo)
    except OSError:
        pass
    return b""


@dataclass(frozen=True)
class NativeName:
    """A native frame: its function (or ``module+0xOFFSET``) and the object it is in."""

    name: str
    object: str  #: the object's path as the target had it
    found: bool  #: named from a symbol table (False: module+offset)
    source: str | None = None  #: --native-lines: the source file, where DWARF says
    line: int | None = None  #: and the line

    @property
    def library(self) -> str:
        """The object's file name, as the ``[lib]`` mark shows it."""
        return os.path.basename(self.object) or self.object


_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size
_STT_FUNC, _STT_GNU_IFUNC = 2, 10


def _functions(table: bytes, strings: bytes) -> list[tuple[int, int, str]]:
    """(value, size, name) of each sized function symbol of a raw Elf64 symbol table:
    one struct pass (pyelftools' per-symbol objects took 4 s for libpython and libc)."""
    out = []
    usable = len(table) - len(table) % _SYM.size
    for name, info, _other, shndx, value, size in _SYM.iter_unpack(table[:usable]):
        if size and shndx and (info & 0xF) in (_STT_FUNC, _STT_GNU_IFUNC):
            end = strings.find(b"\0", name)
            if end > name:
                out.append((value, size, strings[name:end].decode("utf-8", "replace")))
    return out


def _build_id(elf: ELFFile) -> bytes | None:
    for sec in elf.iter_sections():
        if sec.header["sh_type"] == "SHT_NOTE":
            for note in sec.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return bytes.fromhex(note["n_desc"])
    return None


def _split_parts(elf: ELFFile, functions: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """A stripped object's ``f.cold`` parts (see :mod:`flamekit.symbolize.split_parts`)."""
    eh = elf.get_section_by_name(".eh_frame")
    if eh is None:
        return []
    listed = fdes(eh.data(), eh["sh_addr"])
    code = [
        (sec["sh_addr"], sec["sh_addr"] + sec["sh_size"], sec)
        for sec in elf.iter_sections()
        if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
    ]
    data: dict[int, bytes] = {}

    def read(start: int, size: int) -> bytes | None:
        for lo, hi, sec in code:
            if lo <= start and start + size <= hi:
                if lo not in data:
                    data[lo] = sec.data()
                return data[lo][start - lo : start - lo + size]
        return None

    return split_parts(listed, functions, read)


class SymbolTable:
    """An object's sized function symbols, sorted by link-time address."""

    def __init__(self, symbols: Iterable[tuple[int, int, str]]) -> None:
        rows = sorted(set(symbols))
        self.starts = [r[0] for r in rows]
        self.rows = rows

    @classmethod
    def read(cls, path: str | BinaryIO) -> tuple[SymbolTable, bytes | None] | None:
        """The table of the ELF file at ``path`` (or in a binary stream) and its build id;
        None if unreadable."""
        try:
            with open(path, "rb") if isinstance(path, str) else path as f:
                elf = ELFFile(f)
                found: list[tuple[int, int, str]] = []
                for sec in elf.iter_sections():
                    if isinstance(sec, SymbolTableSection) and sec["sh_entsize"] == _SYM.size:
                        strings = elf.get_section(sec["sh_link"]).data()
                        found += _functions(sec.data(), strings)
                if found and elf.get_section_by_name(".symtab") is None:
                    found += _split_parts(elf, found)
                return cls(found), _build_id(elf)
        except _PARSE_ERRORS:
            return None

    def name(self, address: int) -> str | None:
        """The function holding a link-time ``address``; None if no sized symbol does
        (the innermost of overlapping symbols, the one starting last, wins)."""
        i = bisect_right(self.starts, address) - 1
        while i >= 0:
            start, size, name = self.rows[i]
            if address < start + size:
                return name
            if start + (1 << 24) < address:  # no function is 16 MiB long: stop looking
                return None
            i -= 1
        return None


class ObjectFinder:
    """Finds the file for a NATIVE_OBJECT record on this machine (see the module doc)."""

    def __init__(self, debug_dirs: Sequence[str] = ()) -> None:
        self.debug_dirs = [*debug_dirs, *DEFAULT_DEBUG_DIRS]
        self._tables: dict[tuple[str, bytes | None], SymbolTable | None] = {}
        self._paths: dict[tuple[str, bytes | None], str] = {}
        self._lines: dict[tuple[str, bytes | None], LineTable | None] = {}

    def candidates(self, obj: R.NativeObject) -> list[str]:
        out = []
        base = os.path.basename(obj.path)
        for d in self.debug_dirs:
            if obj.build_id:
                h = obj.build_id.hex()
                out.append(os.path.join(d, ".build-id", h[:2], h[2:] + ".debug"))
            out.append(os.path.join(d, base))
        out.append(obj.path)
        return out

    def table(self, obj: R.NativeObject) -> SymbolTable | None:
        """The symbols of the object, from the first candidate whose build id is the
        recorded one (any readable one, if the record has none); None if none is."""
        key = (obj.path, obj.build_id)
        if key in self._tables:
            return self._tables[key]
        found = None
        if obj.path == VDSO and obj.build_id is not None:
            got = SymbolTable.read(io.BytesIO(own_vdso()))
            if got is not None and got[1] == obj.build_id:
                found = got[0]  # the same kernel's vDSO: ours is the target's
        for path in [] if found is not None else self.candidates(obj):
            if not os.path.isfile(path):
                continue
            got = SymbolTable.read(path)
            if got is None:
                continue
            table, bid = got
            if obj.build_id is None or bid == obj.build_id:
                if table.rows:
                    found = table
                    self._paths[key] = path
                    break
        self._tables[key] = found
        return found

    def lines(self, obj: R.NativeObject) -> LineTable | None:
        """The DWARF line table of the file :meth:`table` found for the object (a debug
        file by build id holds it where the object itself was stripped)."""
        key = (obj.path, obj.build_id)
        if key not in self._lines:
            self.table(obj)
            path = self._paths.get(key)
            self._lines[key] = LineTable.read(path) if path is not None else None
        return self._lines[key]


class NativeSymbolizer:
    """Names the addresses of one trace's native stacks (and, with ``lines``, gives them
    their source lines)."""

    def __init__(
        self,
        objects: dict[int, list[R.NativeObject]],
        finder: ObjectFinder,
        lines: bool = False,
    ) -> None:
        self.finder = finder
        self.lines = lines
        #: pid -> sorted (start, end, file offset, object) of every mapping
        self._ranges: dict[int, list[tuple[int, int, int, R.NativeObject]]] = {}
        self._starts: dict[int, list[int]] = {}
        for pid, objs in objects.items():
            spans = sorted(
                (start, end, off, o) for o in objs for start, end, off, _ in o.ranges
            )  # fmt: skip
            self._ranges[pid] = spans
            self._starts[pid] = [s[0] for s in spans]

    def name(self, pid: int, address: int, is_return: bool) -> NativeName:
        """The frame at ``address`` in process ``pid``; ``is_return``: a return address
        (every frame but the innermost), looked up one byte back, in its call."""
        look = address - 1 if is_return else address
        spans = self._ranges.get(pid, [])
        i = bisect_right(self._starts.get(pid, []), look) - 1
        if i < 0 or look >= spans[i][1]:
            return NativeName(f"0x{address:x}", "?", False)
        start, _end, off, obj = spans[i]
        table = self.finder.table(obj)
        if table is not None:
            name = table.name(look - obj.bias)
            if name is not None:
                source = line = None
                if self.lines:
                    lt = self.finder.lines(obj)
                    place = lt.place(look - obj.bias) if lt is not None else None
                    if place is not None:
                        source, line = place
                return NativeName(demangle(name), obj.path, True, source, line)
        base = os.path.basename(obj.path) or obj.path
        return NativeName(f"{base}+0x{look - start + off:x}", obj.path, False)
