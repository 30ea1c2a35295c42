"""Symbols and sections of the ELF file that holds a CPython interpreter.

Finding the interpreter's state starts from a symbol (``_PyRuntime`` from 3.7,
``interp_head`` before), and validating what we read uses a few more (``PyCode_Type``,
``_Py_NoneStruct``...). Exported symbols are looked up through the GNU hash table of
``.dynsym`` (microseconds); names only present in the full ``.symtab`` (static ones such
as 2.7/3.6's ``interp_head``) are found by scanning the raw table once. pyelftools parses
the headers; the bulk scans work on raw bytes because a per-symbol Python object for
15,000 symbols costs a third of a second.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

_SHN_UNDEF = 0
_SYM64 = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size


@dataclass(frozen=True)
class Section:
    name: str
    address: int  #: link-time virtual address (sh_addr)
    offset: int  #: file offset
    size: int


class ElfImage:
    """One ELF file, opened read-only; look things up, then :meth:`close`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._elf = ELFFile(self._file)
        except ELFError as e:
            self._file.close()
            raise ValueError(f"{path}: not an ELF file ({e})") from None
        self.is_pie = self._elf["e_type"] == "ET_DYN"
        if self._elf.elfclass != 64 or not self._elf.little_endian:
            self._file.close()
            raise ValueError(f"{path}: only 64-bit little-endian ELF files are supported")
        #: PT_LOAD segments as (p_vaddr, p_offset), in file order.
        self.loads: list[tuple[int, int]] = [
            (seg["p_vaddr"], seg["p_offset"])
            for seg in self._elf.iter_segments()
            if seg["p_type"] == "PT_LOAD"
        ]
        self._symtab_index: dict[str, int] | None = None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sections ----------------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        sec = self._elf.get_section_by_name(name)
        if sec is None:
            return None
        return Section(name, sec["sh_addr"], sec["sh_offset"], sec["sh_size"])

    def section_data(self, name: str) -> bytes:
        sec = self._elf.get_section_by_name(name)
        return b"" if sec is None else sec.data()

    def soname(self) -> str | None:
        dyn = self._elf.get_section_by_name(".dynamic")
        if dyn is None:
            return None
        for tag in dyn.iter_tags():
            if tag.entry.d_tag == "DT_SONAME":
                return str(tag.soname)
        return None

    def readonly_data(self) -> bytes:
        """The contents of allocated, non-writable, non-executable sections (.rodata...)."""
        out = []
        for sec in self._elf.iter_sections():
            flags = sec["sh_flags"]
            if (
                flags & SH_FLAGS.SHF_ALLOC
                and not flags & (SH_FLAGS.SHF_WRITE | SH_FLAGS.SHF_EXECINSTR)
                and sec["sh_type"] == "SHT_PROGBITS"
            ):
                out.append(sec.data())
        return b"\0".join(out)

    # -- symbols -----------------------------------------------------------------------

    def dynamic_symbol(self, name: str) -> int | None:
        """Link-time value of a *defined* exported symbol, or None."""
        table = self._elf.get_section_by_name(".gnu.hash") or self._elf.get_section_by_name(".hash")
        if table is not None and hasattr(table, "get_symbol"):
            sym = table.get_symbol(name)
            if sym is None or sym["st_shndx"] == "SHN_UNDEF":
                return None
            return int(sym["st_value"])
        dynsym = self._elf.get_section_by_name(".dynsym")
        if dynsym is None:
            return None
        return self._scan_table(dynsym, [name]).get(name)

    def static_symbol(self, name: str) -> int | None:
        """Link-time value of a symbol from the full ``.symtab`` (absent when stripped)."""
        if self._symtab_index is None:
            self._symtab_index = {}
        if name in self._symtab_index:
            return self._symtab_index[name]
        symtab = self._elf.get_section_by_name(".symtab")
        value = None if symtab is None else self._scan_table(symtab, [name]).get(name)
        self._symtab_index[name] = value  # type: ignore[assignment]
        return value

    def symbol(self, name: str) -> int | None:
        """A defined symbol from .dynsym, else from .symtab."""
        value = self.dynamic_symbol(name)
        if value is None:
            value = self.static_symbol(name)
        return value

    def symbols(self, names: Iterable[str]) -> dict[str, int]:
        """The defined ones among ``names``."""
        out = {}
        for name in names:
            value = self.symbol(name)
            if value is not None:
                out[name] = value
        return out

    def has_symtab(self) -> bool:
        return self._elf.get_section_by_name(".symtab") is not None

    def _scan_table(self, table: object, names: list[str]) -> dict[str, int]:
        strtab = self._elf.get_section(table["sh_link"])  # type: ignore[index]
        strings = strtab.data()
        wanted: dict[int, str] = {}
        for name in names:
            for m in re.finditer(re.escape(b"\0" + name.encode() + b"\0"), strings):
                wanted[m.start() + 1] = name
            if strings.startswith(name.encode() + b"\0"):
                wanted[0] = name
        if not wanted:
            return {}
        data = table.data()  # type: ignore[attr-defined]
        out: dict[str, int] = {}
        for st_name, _info, _other, shndx, value, _size in _SYM64.iter_unpack(
            data[: len(data) - len(data) % _SYM64.size]
        ):
            name = wanted.get(st_name)
            if name is not None and shndx != _SHN_UNDEF and name not in out:
                out[name] = value
        return out


_VERSION_STRING = re.compile(rb"(?<![\d.])([23])\.(\d{1,2})\.(\d{1,2})(?:[abc]\d+|rc\d+)?\+?\0")


def scan_version_strings(data: bytes, minor_hint: tuple[int, int] | None = None) -> list[tuple]:
    """Candidate ``(major, minor, micro)`` from NUL-terminated "X.Y.Z" strings in ``data``.

    CPython keeps PY_VERSION ("3.8.18") as a string literal, which the linker may merge
    into the tail of a longer one (".../versions/3.8.18"); other version strings can look
    alike, so candidates matching ``minor_hint`` come first.
    """
    found: dict[tuple[int, int, int], int] = {}
    for m in _VERSION_STRING.finditer(data):
        v = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        found[v] = found.get(v, 0) + 1
    ranked = sorted(found, key=lambda v: (minor_hint is not None and v[:2] == minor_hint, found[v]))
    return list(reversed(ranked))
