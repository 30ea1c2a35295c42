"""Symbols and sections of the ELF file that holds a CPython interpreter.

Finding the interpreter's state starts from a symbol (``_PyRuntime`` from 3.7,
``interp_head`` before), and validating what we read uses a few more (``PyCode_Type``,
``_Py_NoneStruct``...). Exported symbols are looked up through the GNU hash table of
``.dynsym`` (microseconds); names only present in the full ``.symtab`` (static ones such
as 2.7/3.6's ``interp_head``) are found by scanning the raw table once. A per-symbol
Python object for 15,000 symbols costs a third of a second, so everything works on raw
bytes.

The file is the target's, so it is not trusted: a target (or whoever can write its
libraries) may map a corrupt or hostile one. Every offset and size the file declares is
checked against the file's real size before anything is read, once, when it is opened
(the headers and every section) or before the read (a hash chain, a string); whatever
does not fit is one :class:`ElfError` naming the file. pyelftools, used here before,
trusted them: an ``.rodata`` of 2^40 bytes was a MemoryError, a bad string table index
an ELFParseError traceback at attach.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from flamekit.errors import TargetError

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # ELF64 header
_PHDR = struct.Struct("<IIQQQQQQ")  # p_type, p_flags, p_offset, p_vaddr, ..., p_filesz, ...
_SHDR = struct.Struct("<IIQQQQIIQQ")  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, ...
_SYM64 = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
_DYN = struct.Struct("<qQ")  # d_tag, d_val
_GNU_HASH = struct.Struct("<IIII")  # nbuckets, symoffset, bloom_size, bloom_shift
_WORDS = struct.Struct("<II")

_ET_EXEC, _ET_DYN = 2, 3
_PT_LOAD = 1
_PN_XNUM = 0xFFFF
_SHN_UNDEF, _SHN_XINDEX = 0, 0xFFFF
_SHT_NULL, _SHT_PROGBITS, _SHT_HASH, _SHT_DYNAMIC, _SHT_NOBITS = 0, 1, 5, 6, 8
_SHT_GNU_HASH = 0x6FFFFFF6
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 1, 2, 4
_DT_NULL, _DT_SONAME = 0, 14
#: Longest name (symbol, section, soname) read from a string table.
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


class _Shdr(NamedTuple):
    """One section header, as declared (checked against the file when opened)."""

    name: str
    type: int
    flags: int
    address: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


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
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise ElfError(f"cannot open {self.name}: {e.strerror or e}") from None
        try:
            info = os.fstat(self._fd)
            if not stat.S_ISREG(info.st_mode):
                raise ElfError(f"{self.name} is not a regular file")
            self._size = info.st_size
            e_type, (phoff, phnum), (shoff, shnum, shstrndx) = self._elf_header()
            self.is_pie = e_type == _ET_DYN
            #: PT_LOAD segments as (p_vaddr, p_offset), in file order.
            self.loads = self._load_segments(phoff, phnum)
            self._sections = self._section_table(shoff, shnum, shstrndx)
        except BaseException:
            self.close()
            raise
        self._by_name = {sec.name: sec for sec in reversed(self._sections)}  # first wins
        self._symtab_index: dict[str, int | None] = {}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading, bounded ----------------------------------------------------------------

    def _corrupt(self, what: str) -> ElfError:
        return ElfError(f"{self.name} is a corrupt ELF file: {what}")

    def _inside(self, offset: int, size: int, what: str) -> None:
        if offset < 0 or size < 0 or offset + size > self._size:
            raise self._corrupt(
                f"{what} ({size} bytes at offset {offset:#x}) runs past the end of the file "
                f"({self._size} bytes)"
            )

    def _read(self, offset: int, size: int, what: str) -> bytes:
        """``size`` bytes at ``offset``, which must lie inside the file."""
        self._inside(offset, size, what)
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as e:
            raise ElfError(f"cannot read {self.name}: {e.strerror or e}") from None
        if len(data) != size:
            raise ElfError(f"{self.name} changed while it was read (now shorter)")
        return data

    def _elf_header(self) -> tuple[int, tuple[int, int], tuple[int, int, int]]:
        """(e_type, (phoff, phnum), (shoff, shnum, shstrndx)), counts that do not fit
        the header taken from section 0 as the ELF standard says."""
        if self._size < _EHDR.size:
            raise ElfError(f"{self.name} is not an ELF file (only {self._size} bytes)")
        (ident, e_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = _EHDR.unpack(
            self._read(0, _EHDR.size, "the ELF header"))  # fmt: skip
        if ident[:4] != b"\x7fELF":
            raise ElfError(f"{self.name} is not an ELF file")
        if ident[4] != 2 or ident[5] != 1:
            raise ElfError(f"{self.name}: only 64-bit little-endian ELF files are supported")
        if e_type not in (_ET_EXEC, _ET_DYN):
            raise ElfError(f"{self.name} is not an executable or shared object (type {e_type})")
        if phnum and phentsize != _PHDR.size:
            raise self._corrupt(f"program header size {phentsize}, not {_PHDR.size}")
        if not shoff:
            return e_type, (phoff, phnum), (0, 0, 0)
        if shentsize != _SHDR.size:
            raise self._corrupt(f"section header size {shentsize}, not {_SHDR.size}")
        first = _SHDR.unpack(self._read(shoff, _SHDR.size, "the section header table"))
        if shnum == 0:
            shnum = first[5]  # sh_size
        if shstrndx == _SHN_XINDEX:
            shstrndx = first[6]  # sh_link
        if phnum == _PN_XNUM:
            phnum = first[7]  # sh_info
        return e_type, (phoff, phnum), (shoff, shnum, shstrndx)

    def _load_segments(self, phoff: int, phnum: int) -> list[tuple[int, int]]:
        table = self._read(phoff, phnum * _PHDR.size, "the program header table")
        loads = []
        for i, (p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align) in enumerate(
            _PHDR.iter_unpack(table)
        ):
            if p_type == _PT_LOAD:
                self._inside(p_offset, p_filesz, f"segment {i}")
                loads.append((p_vaddr, p_offset))
        return loads

    def _section_table(self, shoff: int, shnum: int, shstrndx: int) -> list[_Shdr]:
        """Every section header, named, each section checked to lie inside the file."""
        table = self._read(shoff, shnum * _SHDR.size, "the section header table")
        headers = list(_SHDR.iter_unpack(table))
        if not headers:
            return []
        if not 0 < shstrndx < len(headers):
            raise self._corrupt(f"section name table index {shstrndx} of {len(headers)}")
        _name, s_type, _flags, _addr, s_offset, s_size = headers[shstrndx][:6]
        if s_type == _SHT_NOBITS:
            raise self._corrupt("the section name table has no contents")
        names = self._read(s_offset, s_size, "the section name table")
        sections = []
        for i, (
            sh_name,
            sh_type,
            flags,
            addr,
            offset,
            size,
            link,
            info,
            _align,
            entsize,
        ) in enumerate(headers):
            name = self._string(names, sh_name, f"section {i}'s name")
            if sh_type not in (_SHT_NULL, _SHT_NOBITS):
                self._inside(offset, size, f"section {i} ({name})")
            sections.append(_Shdr(name, sh_type, flags, addr, offset, size, link, info, entsize))
        return sections

    def _string(self, table: bytes, offset: int, what: str) -> str:
        """The NUL-terminated string at ``offset`` in a string table's bytes."""
        if not 0 <= offset < max(len(table), 1):
            raise self._corrupt(f"{what} lies outside its string table")
        end = table.find(b"\0", offset, offset + MAX_NAME)
        if end < 0:
            raise self._corrupt(f"{what} is not terminated")
        return table[offset:end].decode("utf-8", "surrogateescape")

    def _data(self, sec: _Shdr) -> bytes:
        if sec.type == _SHT_NOBITS:
            return b""
        return self._read(sec.offset, sec.size, f"section {sec.name}")

    def _linked(self, sec: _Shdr) -> _Shdr:
        """The section ``sec``'s sh_link names (a symbol table's strings...)."""
        if not 0 < sec.link < len(self._sections):
            raise self._corrupt(f"section {sec.name} links to section {sec.link}")
        return self._sections[sec.link]

    # -- sections ----------------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        sec = self._by_name.get(name)
        if sec is None:
            return None
        return Section(name, sec.address, sec.offset, sec.size)

    def section_data(self, name: str) -> bytes:
        sec = self._by_name.get(name)
        return b"" if sec is None else self._data(sec)

    def soname(self) -> str | None:
        dyn = self._by_name.get(".dynamic")
        if dyn is None or dyn.type != _SHT_DYNAMIC:
            return None
        data = self._data(dyn)
        for tag, value in _DYN.iter_unpack(data[: len(data) - len(data) % _DYN.size]):
            if tag == _DT_NULL:
                break
            if tag == _DT_SONAME:
                return self._string(self._data(self._linked(dyn)), value, "the soname")
        return None

    def readonly_data(self) -> bytes:
        """The contents of allocated, non-writable, non-executable sections (.rodata...).

        At most the file's size in all: sections may overlap, and a hostile file could
        name the same bytes in each of 65,535 sections."""
        out = []
        total = 0
        for sec in self._sections:
            if (
                sec.flags & _SHF_ALLOC
                and not sec.flags & (_SHF_WRITE | _SHF_EXECINSTR)
                and sec.type == _SHT_PROGBITS
            ):
                total += sec.size
                if total > self._size:
                    raise self._corrupt("its read-only sections add up to more than the file")
                out.append(self._data(sec))
        return b"\0".join(out)

    # -- symbols -----------------------------------------------------------------------

    def dynamic_symbol(self, name: str) -> int | None:
        """Link-time value of a *defined* exported symbol, or None."""
        table = self._by_name.get(".gnu.hash")
        if table is not None and table.type == _SHT_GNU_HASH:
            return self._gnu_lookup(table, name)
        table = self._by_name.get(".hash")
        if table is not None and table.type == _SHT_HASH:
            return self._sysv_lookup(table, name)
        dynsym = self._by_name.get(".dynsym")
        if dynsym is None:
            return None
        return self._scan_table(dynsym, [name]).get(name)

    def static_symbol(self, name: str) -> int | None:
        """Link-time value of a symbol from the full ``.symtab`` (absent when stripped)."""
        if name in self._symtab_index:
            return self._symtab_index[name]
        symtab = self._by_name.get(".symtab")
        value = None if symtab is None else self._scan_table(symtab, [name]).get(name)
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

    def _symbol_table(self, table: _Shdr) -> tuple[bytes, bytes]:
        """(entries, strings) of a symbol table."""
        if table.type == _SHT_NOBITS:
            return b"", b""
        if table.entsize != _SYM64.size:
            raise self._corrupt(f"{table.name} entries of {table.entsize} bytes, not 24")
        return self._data(table), self._data(self._linked(table))

    def _match(
        self, entries: bytes, strings: bytes, index: int, key: bytes
    ) -> tuple[bool, int | None]:
        """Whether symbol ``index`` is named ``key``, and if so its value (None when the
        symbol is undefined here: the lookup ends there, as the dynamic loader's does)."""
        at = index * _SYM64.size
        if at + _SYM64.size > len(entries):
            raise self._corrupt(f"a hash chain names symbol {index}, past the symbol table")
        st_name, _info, _other, shndx, value, _size = _SYM64.unpack_from(entries, at)
        if strings[st_name : st_name + len(key) + 1] != key + b"\0":
            return False, None
        return True, None if shndx == _SHN_UNDEF else value

    def _hash_table(self, table: _Shdr) -> tuple[bytes, bytes, bytes]:
        """(hash table, symbol entries, symbol strings) for a .gnu.hash or .hash."""
        entries, strings = self._symbol_table(self._linked(table))
        return self._data(table), entries, strings

    def _gnu_lookup(self, table: _Shdr, name: str) -> int | None:
        """The GNU hash lookup (bucket by hash, then a chain ending with an odd hash);
        every index it takes from the file is checked against the arrays' real ends."""
        data, entries, strings = self._hash_table(table)
        if len(data) < _GNU_HASH.size:
            raise self._corrupt(f"{table.name} is shorter than its header")
        nbuckets, symoffset, bloom_size, _shift = _GNU_HASH.unpack_from(data)
        buckets_at = _GNU_HASH.size + 8 * bloom_size
        chains_at = buckets_at + 4 * nbuckets
        if nbuckets == 0 or chains_at > len(data):
            raise self._corrupt(f"{table.name} declares more buckets than it holds")
        key = name.encode()
        h = 5381
        for c in key:
            h = (h * 33 + c) & 0xFFFFFFFF
        (index,) = struct.unpack_from("<I", data, buckets_at + 4 * (h % nbuckets))
        if index < symoffset:
            return None  # an empty bucket
        while True:
            at = chains_at + 4 * (index - symoffset)
            if at + 4 > len(data):
                raise self._corrupt(f"a chain of {table.name} runs past its end")
            (h2,) = struct.unpack_from("<I", data, at)
            if h | 1 == h2 | 1:
                found, value = self._match(entries, strings, index, key)
                if found:
                    return value
            if h2 & 1:
                return None
            index += 1

    def _sysv_lookup(self, table: _Shdr, name: str) -> int | None:
        """The System V hash lookup; a chain is followed for at most nchain links (a
        hostile table may loop)."""
        data, entries, strings = self._hash_table(table)
        if len(data) < _WORDS.size:
            raise self._corrupt(f"{table.name} is shorter than its header")
        nbucket, nchain = _WORDS.unpack_from(data)
        if nbucket == 0 or 8 + 4 * (nbucket + nchain) > len(data):
            raise self._corrupt(f"{table.name} declares more entries than it holds")
        key = name.encode()
        h = 0
        for c in key:
            h = ((h << 4) + c) & 0xFFFFFFFF
            h = (h ^ (h >> 24 & 0xF0)) & 0x0FFFFFFF
        (index,) = struct.unpack_from("<I", data, 8 + 4 * (h % nbucket))
        for _ in range(nchain):
            if index == 0:
                return None
            if index >= nchain:
                raise self._corrupt(f"a chain of {table.name} names symbol {index}")
            found, value = self._match(entries, strings, index, key)
            if found:
                return value
            (index,) = struct.unpack_from("<I", data, 8 + 4 * (nbucket + index))
        return None

    def _scan_table(self, table: _Shdr, names: list[str]) -> dict[str, int]:
        data, strings = self._symbol_table(table)
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
