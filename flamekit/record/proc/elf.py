"""Symbols and sections of the ELF file that holds a CPython interpreter.

Finding the interpreter's state starts from a symbol (``_PyRuntime`` from 3.7,
``interp_head`` before), and validating what we read uses a few more (``PyCode_Type``,
``_Py_NoneStruct``...). pyelftools, the project's ELF library, parses the file: the
headers, section names and contents, exported symbols through the GNU hash table of
``.dynsym`` (microseconds), DT_SONAME. Names only present in the full ``.symtab``
(static ones such as 2.7/3.6's ``interp_head``) are found by scanning the raw table
once: a per-symbol Python object for 15,000 symbols costs a third of a second.

The file is the target's, so it is not trusted: a target (or whoever can write its
libraries) may map a corrupt or hostile one, and pyelftools believes every offset,
size, count, index and link in it (an ``.rodata`` declared 2^40 bytes long was a
MemoryError, a bad string table index an ELFParseError traceback at attach). So
nothing reaches pyelftools unchecked: when the file is opened, its header tables and
every section must lie inside the file's real size (fstat); before pyelftools follows
a table, the table's links, geometry, chains and string offsets are checked so that
every read it makes stays inside that table and every loop ends there. What does not
fit, and anything pyelftools raises, is one :class:`ElfError` naming the file.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.construct import Construct, ConstructError
from elftools.construct.lib.container import Container
from elftools.elf.constants import SH_FLAGS
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.hash import GNUHashSection
from elftools.elf.sections import Section as ElfSection
from elftools.elf.sections import StringTableSection

from flamekit.errors import TargetError

#: What pyelftools raises on bytes it cannot make sense of: its own errors (ELFError,
#: and ELFParseError wrapping construct's when it parses from the file), construct's
#: own, struct.error (the GNU hash chain is read with struct), ValueError and
#: OverflowError (a seek to a negative offset, or past 2^63; UnicodeDecodeError is a
#: ValueError), IndexError and KeyError (a list or container indexed by a value from
#: the file), ZeroDivisionError (a hash table of no buckets) and AssertionError (it
#: asserts some contents, such as a dynamic section's string table). The checks below
#: mean to keep every one of these from happening; this is the net under them.
_PARSE_ERRORS = (
    ELFError,
    ConstructError,
    struct.error,
    ValueError,
    OverflowError,
    IndexError,
    KeyError,
    ZeroDivisionError,
    AssertionError,
)

_PN_XNUM = 0xFFFF
_GNU_HASH_HEADER = struct.Struct("<IIII")  # nbuckets, symoffset, bloom_size, bloom_shift
_WORD = struct.Struct("<I")
_ST_NAME = struct.Struct("<I20x")  # an Elf64_Sym's st_name, and the rest skipped
_SYM64 = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
_DYN = struct.Struct("<qQ")  # d_tag, d_val
_DT_NULL, _DT_SONAME = 0, 14
_SHN_UNDEF = 0
#: Most sections or segments a file may declare: what the header's 16-bit counts can
#: say. ELF's extension past them is for object and core files, never for a program a
#: process runs, and a hostile count would cost 400 bytes a header parsed.
MAX_ENTRIES = 0xFFFF
#: A string table must hold a NUL in every this many bytes: a name pyelftools reads ends
#: within twice that.
MAX_NAME = 4096


class ElfError(TargetError):
    """A file that cannot be read as a 64-bit little-endian ELF file: not one, or one
    whose headers contradict themselves or the file's size (corrupt, or hostile)."""


@dataclass(frozen=True)
class Section:
    name: str
    address: int  #: link-time virtual address (sh_addr)
    offset: int  #: file offset
    size: int


class ElfImage:
    """One ELF file, opened read-only; look things up, then :meth:`close`.

    ``name`` is what errors call the file (the target's path for it); by default the
    path opened. Raises :class:`ElfError` (never another exception from the file's
    bytes) when the file is not a usable ELF file, here or in any lookup.
    """

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path = path
        self.name = name or path
        # Not a plain open(): the path is the target's word, and a FIFO there would block
        # us, a device never end. O_NONBLOCK does nothing to a regular file's reads.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise ElfError(f"cannot open {self.name}: {e.strerror or e}") from None
        self._file = open(fd, "rb")  # noqa: SIM115 - closed in close()
        self._symtab_index: dict[str, int | None] = {}
        self._strings: dict[int, bytes] = {}
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ElfError(f"{self.name} is not a regular file")
            self._size = info.st_size
            with self._parsing():
                self._elf = self._elf_file()
                self.is_pie = self._elf["e_type"] == "ET_DYN"
                #: Section headers (pyelftools containers), each checked against the file.
                self._headers = self._section_headers()
                self._names = self._section_names()
                #: PT_LOAD segments as (p_vaddr, p_offset), in file order.
                self.loads = self._load_segments()
        except BaseException:
            self.close()
            raise
        self._by_name: dict[str, int] = {}
        for i, name in enumerate(self._names):
            self._by_name.setdefault(name, i)  # the first of a name wins

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the file, checked ------------------------------------------------------------

    def _corrupt(self, what: str) -> ElfError:
        return ElfError(f"{self.name} is a corrupt ELF file: {what}")

    @contextmanager
    def _parsing(self) -> Iterator[None]:
        """pyelftools' errors (and the file's own) as one ElfError naming the file."""
        try:
            yield
        except _PARSE_ERRORS as e:
            raise self._corrupt(str(e) or type(e).__name__) from None
        except OSError as e:
            raise ElfError(f"cannot read {self.name}: {e.strerror or e}") from None

    def _inside(self, offset: int, size: int, what: str) -> None:
        if offset < 0 or size < 0 or offset + size > self._size:
            raise self._corrupt(
                f"{what} ({size} bytes at offset {offset:#x}) runs past the end of the file "
                f"({self._size} bytes)"
            )

    def _elf_file(self) -> ELFFile:
        """pyelftools' view of the file, once its header says it is one we can read."""
        try:
            elf = ELFFile(self._file)
        except _PARSE_ERRORS as e:
            raise ElfError(f"{self.name} is not an ELF file ({e})") from None
        if elf.elfclass != 64 or not elf.little_endian:
            raise ElfError(f"{self.name}: only 64-bit little-endian ELF files are supported")
        if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
            raise ElfError(
                f"{self.name} is not an executable or shared object (type {elf['e_type']})"
            )
        return elf

    def _table(
        self, offset: int, count: int, entsize: int, entry: Construct, what: str
    ) -> Iterator[Container]:
        """``count`` entries of ``entsize`` bytes, parsed one by one with the pyelftools
        struct ``entry`` (about 14 us and 400 bytes each) once the whole table is known
        to lie inside the file and to be no longer than a 16-bit count says."""
        if count > MAX_ENTRIES:
            raise self._corrupt(f"{what} has {count} entries (more than {MAX_ENTRIES})")
        if count and entsize < entry.sizeof():
            raise self._corrupt(f"{what} entries of {entsize} bytes, under {entry.sizeof()}")
        self._inside(offset, count * entsize, what)
        return (struct_parse(entry, self._file, offset + i * entsize) for i in range(count))

    def _section_headers(self) -> list[Container]:
        """Every section header (pyelftools containers)."""
        if not self._elf["e_shoff"]:
            return []
        what = "the section header table"
        self._inside(self._elf["e_shoff"], self._elf.structs.Elf_Shdr.sizeof(), what)
        return list(
            self._table(
                self._elf["e_shoff"],
                self._elf.num_sections(),  # e_shnum, or section 0's sh_size past 0xff00
                self._elf["e_shentsize"],
                self._elf.structs.Elf_Shdr,
                what,
            )
        )

    def _section_names(self) -> list[str]:
        """Every section's name, through pyelftools' string table once its offsets are
        known to lie inside it; then every section is checked to lie inside the file."""
        if not self._headers:
            return []
        index = self._elf.get_shstrndx()  # e_shstrndx, or section 0's sh_link
        if not 0 < index < len(self._headers):
            raise self._corrupt(f"section name table index {index} of {len(self._headers)}")
        size = len(self._string_table(index, "the section name table"))
        for i, header in enumerate(self._headers):
            if header["sh_name"] >= size:
                raise self._corrupt(f"section {i}'s name lies outside its string table")
        table = self._elf.get_section(index)
        assert isinstance(table, StringTableSection)  # _string_table checked its type
        names = [table.get_string(header["sh_name"]) for header in self._headers]
        for i, (header, name) in enumerate(zip(self._headers, names)):
            if header["sh_type"] not in ("SHT_NULL", "SHT_NOBITS"):
                self._inside(header["sh_offset"], header["sh_size"], f"section {i} ({name})")
        return names

    def _load_segments(self) -> list[tuple[int, int]]:
        count = self._elf["e_phnum"]
        if count == _PN_XNUM:  # the real count is section 0's sh_info
            count = self._headers[0]["sh_info"] if self._headers else 0
        segments = self._table(
            self._elf["e_phoff"],
            count,
            self._elf["e_phentsize"],
            self._elf.structs.Elf_Phdr,
            "the program header table",
        )
        loads = []
        for i, segment in enumerate(segments):
            if segment["p_type"] == "PT_LOAD":
                self._inside(segment["p_offset"], segment["p_filesz"], f"segment {i}")
                loads.append((segment["p_vaddr"], segment["p_offset"]))
        return loads

    def _data(self, index: int) -> bytes:
        return self._read(self._headers[index], f"section {self._names[index]}")

    def _read(self, header: Container, what: str) -> bytes:
        """A section's contents, read by pyelftools once they are known to lie inside
        the file. Never decompressed: none of the sections read here is compressed in a
        sound file, and a compressed one could inflate a thousandfold."""
        if header["sh_type"] == "SHT_NOBITS":
            return b""  # not pyelftools' sh_size zero bytes: that size is the file's word
        if header["sh_flags"] & SH_FLAGS.SHF_COMPRESSED:
            raise self._corrupt(f"{what} is compressed")
        self._inside(header["sh_offset"], header["sh_size"], what)
        data = ElfSection(header, what, self._elf).data()
        if len(data) != header["sh_size"]:
            raise ElfError(f"{self.name} changed while it was read (now shorter)")
        return data

    def _linked(self, index: int, sh_type: str) -> int:
        """The section that section ``index``'s sh_link names, of type ``sh_type``
        (pyelftools would take a header from past the table for a link past it)."""
        link = self._headers[index]["sh_link"]
        name = self._names[index]
        if not 0 < link < len(self._headers):
            raise self._corrupt(f"section {name} links to section {link}")
        if self._headers[link]["sh_type"] != sh_type:
            raise self._corrupt(
                f"section {name} links to section {link} ({self._headers[link]['sh_type']}), "
                f"not a {sh_type}"
            )
        return link

    def _string_table(self, index: int, what: str) -> bytes:
        """A string table's bytes, once known to hold only names that end inside it
        within MAX_NAME bytes: pyelftools reads a name up to its NUL, wherever that is."""
        if index not in self._strings:
            header = self._headers[index]
            if header["sh_type"] != "SHT_STRTAB":
                raise self._corrupt(f"{what} is not a string table ({header['sh_type']})")
            data = self._read(header, what)
            if not data.endswith(b"\0"):
                raise self._corrupt(f"{what} does not end with a NUL")
            # A NUL in every MAX_NAME bytes: no name is 2 * MAX_NAME long (a regex for
            # exactly MAX_NAME took 0.5 ms on a 40 kB .dynstr; this takes microseconds).
            if any(data.find(b"\0", at, at + MAX_NAME) < 0 for at in range(0, len(data), MAX_NAME)):
                raise self._corrupt(f"{what} holds a name over {MAX_NAME} bytes")
            self._strings[index] = data
        return self._strings[index]

    def _symbol_table(self, index: int) -> tuple[bytes, bytes]:
        """(entries, strings) of a symbol table (its strings not checked: scanned raw)."""
        header = self._headers[index]
        if header["sh_type"] == "SHT_NOBITS":
            return b"", b""
        if header["sh_entsize"] != _SYM64.size:
            raise self._corrupt(f"{self._names[index]} entries of {header['sh_entsize']} bytes")
        return self._data(index), self._data(self._linked(index, "SHT_STRTAB"))

    # -- sections ----------------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        index = self._by_name.get(name)
        if index is None:
            return None
        header = self._headers[index]
        return Section(name, header["sh_addr"], header["sh_offset"], header["sh_size"])

    def section_data(self, name: str) -> bytes:
        index = self._by_name.get(name)
        if index is None:
            return b""
        with self._parsing():
            return self._data(index)

    def soname(self) -> str | None:
        index = self._by_name.get(".dynamic")
        if index is None or self._headers[index]["sh_type"] != "SHT_DYNAMIC":
            return None
        with self._parsing():
            if not self._checked_dynamic(index):
                return None
            dynamic = self._elf.get_section(index)
            assert isinstance(dynamic, DynamicSection)  # by its type
            for tag in dynamic.iter_tags("DT_SONAME"):
                return str(tag.soname)
        return None

    def _checked_dynamic(self, index: int) -> bool:
        """Whether the dynamic section has tags; they end (DT_NULL) inside it, where
        pyelftools stops reading, and DT_SONAME names a string inside its table."""
        if self._headers[index]["sh_type"] == "SHT_NOBITS":
            return False
        strings = self._string_table(self._linked(index, "SHT_STRTAB"), "the soname's table")
        data = self._data(index)
        for tag, value in _DYN.iter_unpack(data[: len(data) - len(data) % _DYN.size]):
            if tag == _DT_NULL:
                return True
            if tag == _DT_SONAME and value >= len(strings):
                raise self._corrupt("the soname lies outside its string table")
        raise self._corrupt("the dynamic section does not end (no DT_NULL)")

    def readonly_data(self) -> bytes:
        """The contents of allocated, non-writable, non-executable sections (.rodata...).

        At most the file's size in all: sections may overlap, and a hostile file could
        name the same bytes in each of 65,535 sections."""
        out = []
        total = 0
        with self._parsing():
            for index, header in enumerate(self._headers):
                flags = header["sh_flags"]
                if (
                    flags & SH_FLAGS.SHF_ALLOC
                    and not flags & (SH_FLAGS.SHF_WRITE | SH_FLAGS.SHF_EXECINSTR)
                    and header["sh_type"] == "SHT_PROGBITS"
                ):
                    total += header["sh_size"]
                    if total > self._size:
                        raise self._corrupt("its read-only sections add up to more than the file")
                    out.append(self._data(index))
        return b"\0".join(out)

    # -- symbols -----------------------------------------------------------------------

    def dynamic_symbol(self, name: str) -> int | None:
        """Link-time value of a *defined* exported symbol, or None."""
        with self._parsing():
            table = self._gnu_hash
            if table is not None:
                symbol = table.get_symbol(name)
                if symbol is None or symbol["st_shndx"] == "SHN_UNDEF":
                    return None
                return int(symbol["st_value"])
            # No GNU hash table: scan .dynsym (pyelftools' System V hash lookup follows
            # a chain as long as it goes, and a hostile one loops).
            index = self._by_name.get(".dynsym")
            if index is None:
                return None
            return self._scan_table(index, [name]).get(name)

    @cached_property
    def _gnu_hash(self) -> GNUHashSection | None:
        """pyelftools' GNU hash table, once every chain it may walk is known to end
        inside the table on a symbol of .dynsym whose name ends inside .dynstr. (It
        parses the bloom words and buckets into lists: memory linear in the table.)"""
        index = self._by_name.get(".gnu.hash")
        if index is None or self._headers[index]["sh_type"] != "SHT_GNU_HASH":
            return None
        self._check_gnu_hash(index)
        table = self._elf.get_section(index)
        assert isinstance(table, GNUHashSection)  # by its type
        return table

    def _check_gnu_hash(self, index: int) -> None:
        symbols = self._linked(index, "SHT_DYNSYM")
        if self._headers[symbols]["sh_entsize"] != _SYM64.size:
            raise self._corrupt(f"{self._names[symbols]} entries are not {_SYM64.size} bytes")
        strings = self._string_table(self._linked(symbols, "SHT_STRTAB"), "the symbol names")
        entries = self._data(symbols)
        count = len(entries) // _SYM64.size
        top = max((n for (n,) in _ST_NAME.iter_unpack(entries[: count * _SYM64.size])), default=0)
        if top >= len(strings):
            raise self._corrupt("a symbol's name lies outside its string table")
        data = self._data(index)
        what = self._names[index]
        if len(data) < _GNU_HASH_HEADER.size:
            raise self._corrupt(f"{what} is shorter than its header")
        nbuckets, symoffset, bloom_size, _shift = _GNU_HASH_HEADER.unpack_from(data)
        buckets_at = _GNU_HASH_HEADER.size + 8 * bloom_size
        chains_at = buckets_at + 4 * nbuckets
        if not nbuckets or not bloom_size or chains_at > len(data):
            raise self._corrupt(f"{what}: {nbuckets} buckets, {bloom_size} bloom words")
        first = max(n for (n,) in _WORD.iter_unpack(data[buckets_at:chains_at]))
        if first < symoffset:
            return  # every bucket is empty: no chain is walked
        # A chain runs from its bucket's symbol up to one whose hash is odd; the last
        # symbol's is (it ends the last chain), so a walk stops there at the latest.
        last_at = chains_at + 4 * (count - 1 - symoffset)
        if first >= count or last_at + 4 > len(data):
            raise self._corrupt(f"a chain of {what} runs past .dynsym or past its own end")
        if not _WORD.unpack_from(data, last_at)[0] & 1:
            raise self._corrupt(f"the last chain of {what} does not end")

    def static_symbol(self, name: str) -> int | None:
        """Link-time value of a symbol from the full ``.symtab`` (absent when stripped)."""
        if name in self._symtab_index:
            return self._symtab_index[name]
        index = self._by_name.get(".symtab")
        with self._parsing():
            value = None if index is None else self._scan_table(index, [name]).get(name)
        self._symtab_index[name] = value
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
        return ".symtab" in self._by_name

    def _scan_table(self, index: int, names: list[str]) -> dict[str, int]:
        data, strings = self._symbol_table(index)
        wanted: dict[int, str] = {}
        for name in names:
            for m in re.finditer(re.escape(b"\0" + name.encode() + b"\0"), strings):
                wanted[m.start() + 1] = name
            if strings.startswith(name.encode() + b"\0"):
                wanted[0] = name
        if not wanted:
            return {}
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
