"""Issue 17: a corrupt or hostile ELF file mapped by the target is one error line.

The recorder reads the target's interpreter file (the executable, or the libpython it
loaded) from disk, so that file is input like any other: whoever can write the target's
libraries decides what it says. A process runs from a file whose section headers are
wrong (the loader never reads them), so such a target is real and recordable-looking.
Before: a traceback at attach (ELFParseError, OSError from a seek, ELFError), and a
MemoryError for an ``.rodata`` declared 2^40 bytes long, read whole because its size
was trusted. Now every offset and size is checked against the file's real size, and
attaching says in one line which file is corrupt, within bounded memory.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st
from pythons import pyenv_root, python314
from test_reliability_common import ROOT, one_error_line

from flamekit.record.proc.elf import ElfError, ElfImage

#: The flamekit processes under test may not grow past this (a 2^40-byte read would).
MEMORY_LIMIT = 1 << 30


def _pyenv(minor: str) -> Path:
    return sorted((pyenv_root() / "versions").glob(f"{minor}.*"))[-1]


# -- where things are in a real file (found with pyelftools, in the sound file) ----------


def _section_headers(path: Path) -> tuple[int, dict[str, int]]:
    """(e_shoff, section name -> the file offset of its header)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        shoff = elf["e_shoff"]
        return shoff, {s.name: shoff + i * 64 for i, s in enumerate(elf.iter_sections())}


def _patch(path: Path, offset: int, fmt: str, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def _huge_rodata(path: Path) -> None:
    _patch(path, _section_headers(path)[1][".rodata"] + 32, "<Q", 1 << 40)  # sh_size


def _huge_dynsym(path: Path) -> None:
    _patch(path, _section_headers(path)[1][".dynsym"] + 32, "<Q", 1 << 40)


def _dynsym_far_away(path: Path) -> None:
    _patch(path, _section_headers(path)[1][".dynsym"] + 24, "<Q", 1 << 62)  # sh_offset


def _truncated(path: Path) -> None:
    """Cut in the section header table (after everything the loader maps)."""
    shoff, _ = _section_headers(path)
    os.truncate(path, shoff + 10 * 64 + 7)


def _garbage_section_table(path: Path) -> None:
    shoff, _ = _section_headers(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(shoff)
        f.write(bytes((i * 151 + 7) & 0xFF for i in range(size - shoff)))


def _bad_string_table_index(path: Path) -> None:
    _patch(path, 0x3E, "<H", 0xFFF0)  # e_shstrndx


def _dynsym_links_nowhere(path: Path) -> None:
    _patch(path, _section_headers(path)[1][".dynsym"] + 40, "<I", 0xFFFFFF)  # sh_link


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "rodata-2^40": _huge_rodata,
    "dynsym-2^40": _huge_dynsym,
    "dynsym-offset-2^62": _dynsym_far_away,
    "truncated": _truncated,
    "garbage-section-table": _garbage_section_table,
    "bad-string-table-index": _bad_string_table_index,
    "dynsym-links-nowhere": _dynsym_links_nowhere,
}

SLEEPER = "import sys; print('ready', flush=True); sys.stdin.read()"


def _run_limited(*args: object) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "flamekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=limit,
    )


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **env}
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n", "did not start"
    return proc


def _assert_refused_naming(proc: subprocess.Popen, corrupt: Path, tmp_path: Path) -> None:
    """``record -p`` and ``dump -p`` of the process: exit 1, one line naming the file."""
    out = tmp_path / "t.fkt"
    for args in (("record", "-q", "-p", proc.pid, "-d", 1, "-o", out), ("dump", "-p", proc.pid)):
        r = _run_limited(*args)
        assert r.returncode == 1, (args[0], r.stderr)
        line = one_error_line(r.stderr)
        assert str(corrupt) in line and "corrupt ELF file" in line, line
        assert proc.poll() is None  # the target is unharmed


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
@pytest.mark.parametrize("minor", ["3.9", "3.11"])
def test_a_corrupt_libpython_is_one_line_naming_it(
    tmp_path: Path, minor: str, corrupt: Callable[[Path], None]
) -> None:
    """A process runs from a copy of libpython with broken section headers: attaching
    to it names the copy (3.9 reads .rodata for its version: the MemoryError case)."""
    home = _pyenv(minor)
    (lib,) = (home / "lib").glob(f"libpython{minor}*.so.1.0")
    copy = tmp_path / lib.name
    shutil.copy(lib, copy)
    corrupt(copy)
    python = home / "bin" / f"python{minor}"
    proc = _start([str(python), "-c", SLEEPER], {"LD_LIBRARY_PATH": str(tmp_path)})
    try:
        with open(f"/proc/{proc.pid}/maps") as f:
            assert str(copy) in f.read()  # it runs the corrupt copy, not the original
        _assert_refused_naming(proc, copy, tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_a_corrupt_executable_is_one_line_naming_it(tmp_path: Path) -> None:
    """Debian's 3.14 is static: the interpreter is the executable, corrupt here."""
    python = Path(python314().path).resolve()
    copy = tmp_path / python.name
    shutil.copy(python, copy)
    _garbage_section_table(copy)
    proc = _start([str(copy), "-c", SLEEPER], {"PYTHONHOME": str(python.parent.parent)})
    try:
        _assert_refused_naming(proc, copy, tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_a_corrupt_file_beside_the_interpreter_does_not_matter(tmp_path: Path) -> None:
    """The executable is tried first; when it is corrupt and the interpreter is in a
    sound libpython, the recording goes on (the file that failed held nothing we use)."""
    home = _pyenv("3.11")
    copy = tmp_path / "python3.11"
    shutil.copy(home / "bin" / "python3.11", copy)
    _garbage_section_table(copy)
    proc = _start([str(copy), "-c", SLEEPER], {"LD_LIBRARY_PATH": str(home / "lib")})
    try:
        r = _run_limited("dump", "-p", proc.pid)
        assert r.returncode == 0, r.stderr
        assert "<module>" in r.stdout
    finally:
        proc.kill()
        proc.wait()


# -- the parser alone ----------------------------------------------------------------------


def _real_files() -> list[str]:
    """Interpreter files of every kind here: pyenv executables and libpythons (2.7 to
    3.13), Debian's static 3.11 and 3.14, and libc."""
    files = sorted(str(p) for p in (pyenv_root() / "versions").glob("*/lib/libpython*.so.1.0"))
    files += sorted(str(p) for p in (pyenv_root() / "versions").glob("*/bin/python?.*[0-9]"))
    files += [
        "/usr/bin/python3.11",
        python314().path,
        os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"),
    ]
    return files


LOOKUPS = [
    "_PyRuntime", "PyInterpreterState_Head", "Py_Version", "PyCode_Type", "PyFrame_Type",
    "PyUnicode_Type", "PyBytes_Type", "PyString_Type", "_Py_NoneStruct",
    "_PyThreadState_Current", "interp_head", "malloc", "main", "no_such_symbol_here",
    "Py_Main", "Py_BytesMain",  # undefined in the launchers: a lookup must say None
]  # fmt: skip


class Readelf(NamedTuple):
    """What binutils' readelf says of a file: an oracle that shares no code with the
    module (pyelftools parses for it, so pyelftools cannot be its oracle)."""

    is_pie: bool
    loads: list[tuple[int, int]]  #: PT_LOAD (p_vaddr, p_offset)
    #: name -> (sh_addr, sh_offset, sh_size, type, flags), the first of a name
    sections: dict[str, tuple[int, int, int, str, str]]
    soname: str | None
    dynamic: dict[str, int]  #: first defined .dynsym value of each name
    static: dict[str, int] | None  #: the same for .symtab; None without one


#: "  [Nr] Name  Type  Address Off Size ES Flg Lk Inf Al" (the name padded to 17 columns)
_SECTION = re.compile(
    r"^\s*\[\s*\d+\]\s(.{17,}?)\s+(\S+)\s+([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+) [0-9a-f]+"
    r"\s+([A-Za-z]*)\s+\d+\s+\d+\s+\d+$"
)
_LOAD = re.compile(r"^\s*LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) ")
_SONAME = re.compile(r"\(SONAME\)\s+Library soname: \[(.*)\]")
_TABLE = re.compile(r"^Symbol table '(\S+)' contains")
_SYMBOL = re.compile(r"^\s*\d+: ([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s?(.*)$")


def _readelf(path: str) -> Readelf:
    def run(*options: str) -> list[str]:
        r = subprocess.run(["readelf", "-W", *options, path], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    headers = run("--file-header", "--segments", "--sections", "--dynamic")
    sections: dict[str, tuple[int, int, int, str, str]] = {}
    for m in filter(None, map(_SECTION.match, headers)):
        name, kind, addr, off, size, flags = m.groups()
        sections.setdefault(name.strip(), (int(addr, 16), int(off, 16), int(size, 16), kind, flags))
    loads = [(int(m[2], 16), int(m[1], 16)) for m in filter(None, map(_LOAD.match, headers))]
    sonames = [m[1] for m in filter(None, map(_SONAME.search, headers))]
    tables: dict[str, dict[str, int]] = {}
    table: dict[str, int] = {}
    for line in run("--syms"):
        if m := _TABLE.match(line):
            table = tables.setdefault(m[1], {})
        elif (m := _SYMBOL.match(line)) and m[2] != "UND":
            # .dynsym names are shown with their version (name@VERSION (n)), which is
            # not in the string table; .symtab names are shown as the table has them.
            name = m[3].split("@")[0] if table is tables.get(".dynsym") else m[3]
            table.setdefault(name, int(m[1], 16))
    return Readelf(
        is_pie=any(line.split()[:2] == ["Type:", "DYN"] for line in headers),
        loads=loads,
        sections=sections,
        soname=sonames[0] if sonames else None,
        dynamic=tables.get(".dynsym", {}),
        static=tables.get(".symtab"),
    )


@pytest.mark.parametrize("path", _real_files(), ids=os.path.basename)
def test_real_files_read_as_readelf_reads_them(path: str) -> None:
    """Every lookup the recorder makes, on every real interpreter file, against
    readelf: load segments, sections, soname, exported symbols (through the GNU hash
    table), static ones (.symtab) and the read-only data the version is found in."""
    want = _readelf(path)
    with ElfImage(path) as image:
        assert (image.is_pie, image.loads, image.soname()) == (
            want.is_pie,
            want.loads,
            want.soname,
        )
        got = {n: image.section(n) for n in want.sections}
        assert {n: (s.address, s.offset, s.size) for n, s in got.items() if s} == {
            n: s[:3] for n, s in want.sections.items()
        }
        assert {n: image.dynamic_symbol(n) for n in LOOKUPS} == {
            n: want.dynamic.get(n) for n in LOOKUPS
        }
        assert image.has_symtab() == (want.static is not None)
        if want.static is not None:
            assert {n: image.static_symbol(n) for n in LOOKUPS} == {
                n: want.static.get(n) for n in LOOKUPS
            }
        readonly = [
            (off, size)
            for _addr, off, size, kind, flags in want.sections.values()
            if kind == "PROGBITS" and "A" in flags and not {"W", "X"} & set(flags)
        ]
        with open(path, "rb") as f:
            contents = [os.pread(f.fileno(), size, off) for off, size in readonly]
        assert readonly and image.readonly_data() == b"\0".join(contents)
    # (pyenv's executables are small launchers: they export none of these)
    assert any(want.dynamic.get(n) for n in LOOKUPS) or os.path.getsize(path) < 100_000


def test_a_file_that_is_not_regular_is_refused_without_blocking(tmp_path: Path) -> None:
    """The target names its files; a FIFO put where one was would block an open() for
    ever, a device never end. Both are refused at once (a child, so a hang is a fail)."""
    fifo = tmp_path / "libpython3.11.so.1.0"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    os.mknod(zero, 0o600 | 0o020000, os.makedev(1, 5))  # a /dev/zero of our own
    code = (
        "import sys\nfrom flamekit.record.proc.elf import ElfImage, ElfError\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        ElfImage(p)\n    except ElfError as e:\n        print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(fifo), str(zero)],
        capture_output=True, text=True, timeout=20, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"{fifo} is not a regular file",
        f"{zero} is not a regular file",
    ]


# -- random corruption ------------------------------------------------------------------------

#: A real dynamically linked executable, small enough to write out for every example.
SMALL = _pyenv("3.11") / "bin" / "python3.11"


def _regions(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of every header and table the parser reads in ``path``."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out = [
            (0, 64),
            (elf["e_phoff"], elf["e_phnum"] * 56),
            (elf["e_shoff"], elf["e_shnum"] * 64),
        ]
        for s in elf.iter_sections():
            if s.name in (
                ".dynsym",
                ".dynstr",
                ".gnu.hash",
                ".dynamic",
                ".shstrtab",
                ".symtab",
                ".strtab",
            ):
                out.append((s["sh_offset"], min(s["sh_size"], 4096)))
    return out


ORIGINAL = SMALL.read_bytes()
REGIONS = _regions(SMALL)


def _exercise(image: ElfImage, size: int) -> None:
    """Every lookup the recorder makes; what comes back is inside the file."""
    assert all(isinstance(v, int) and isinstance(o, int) for v, o in image.loads)
    for name in (".dynsym", ".dynstr", ".symtab", ".rodata", ".gnu.hash", ".nothing"):
        assert len(image.section_data(name)) <= size
        image.section(name)
    assert len(image.readonly_data()) <= size + 64
    image.soname()
    image.symbols(LOOKUPS)
    image.has_symtab()


@settings(max_examples=300)
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(range(len(REGIONS))), st.floats(0, 1), st.integers(0, 255)),
        min_size=1,
        max_size=12,
    ),
    cut=st.none() | st.integers(0, len(ORIGINAL)),
)
def test_random_corruption_gives_values_or_one_error(edits, cut) -> None:
    data = bytearray(ORIGINAL)
    for region, where, byte in edits:
        start, length = REGIONS[region]
        at = start + int(where * max(length - 1, 0))
        if at < len(data):
            data[at] = byte
    if cut is not None:
        del data[cut:]
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(data)
        f.flush()
        try:
            with ElfImage(f.name) as image:
                _exercise(image, len(data))
        except ElfError as e:
            assert f.name in str(e)  # names the file


# -- the tables pyelftools follows, checked before it does --------------------------------

LIBPYTHON311 = next((_pyenv("3.11") / "lib").glob("libpython3.11.so.1.0"))


def _section(path: Path, name: str) -> tuple[int, int, int, int]:
    """(index, offset of its header, sh_offset, sh_size) of a section of the sound file."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        index = elf.get_section_index(name)
        section = elf.get_section(index)
        return index, elf["e_shoff"] + index * 64, section["sh_offset"], section["sh_size"]


def _gnu_hash(path: Path) -> tuple[int, int, int, int]:
    """(offset of .gnu.hash, of its buckets, of its chains, of its last chain word)."""
    _, _, at, size = _section(path, ".gnu.hash")
    with open(path, "rb") as f:
        f.seek(at)
        nbuckets, _symoffset, bloom_size, _ = struct.unpack("<4I", f.read(16))
    buckets = at + 16 + 8 * bloom_size
    return at, buckets, buckets + 4 * nbuckets, at + size - 4


def _dynamic_tags(path: Path) -> list[tuple[int, int]]:
    """(file offset, d_tag) of every entry of .dynamic, up to its section's end."""
    _, _, at, size = _section(path, ".dynamic")
    with open(path, "rb") as f:
        f.seek(at)
        data = f.read(size)
    return [(at + i * 16, tag) for i, (tag, _) in enumerate(struct.iter_unpack("<qQ", data))]


def _no_dynamic_end(path: Path) -> None:
    for at, tag in _dynamic_tags(path):
        if tag == 0:
            _patch(path, at, "<q", 21)  # DT_DEBUG, over every DT_NULL (the end and padding)


def _soname_outside(path: Path) -> None:
    (at,) = [at for at, tag in _dynamic_tags(path) if tag == 14]
    _patch(path, at + 8, "<Q", 1 << 40)


def _many_sections(path: Path) -> None:
    """e_shnum 0: the count is section 0's sh_size, 200,000 (12.8 MB of headers inside
    the file: 2.8 s and 80 MB of pyelftools containers if they were parsed)."""
    _patch(path, 0x28, "<Q", 0x1000)  # e_shoff
    _patch(path, 0x3C, "<H", 0)  # e_shnum
    _patch(path, 0x1000 + 32, "<Q", 200_000)


def _set_bits(path: Path, offset: int, fmt: str, bits: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        (value,) = struct.unpack(fmt, f.read(struct.calcsize(fmt)))
    _patch(path, offset, fmt, value | bits)


#: corruption -> what the error must say: the check that refused it, not the net under
#: them (pyelftools' own error), nor a value read from outside the table.
TABLES: dict[str, tuple[Callable[[Path], None], str]] = {
    "gnu-hash-no-buckets": (lambda p: _patch(p, _gnu_hash(p)[0], "<I", 0), "0 buckets"),
    "gnu-hash-bloom-2^31": (lambda p: _patch(p, _gnu_hash(p)[0] + 8, "<I", 1 << 31), "bloom"),
    "gnu-hash-bucket-past-dynsym": (
        lambda p: _patch(p, _gnu_hash(p)[1], "<I", 0xFFFFFF),
        "runs past .dynsym",
    ),
    "gnu-hash-open-chain": (
        lambda p: _patch(p, _gnu_hash(p)[3], "<I", 2),
        "last chain of .gnu.hash does not end",
    ),
    "gnu-hash-links-to-strings": (
        lambda p: _patch(p, _section(p, ".gnu.hash")[1] + 40, "<I", _section(p, ".dynstr")[0]),
        "not a SHT_DYNSYM",
    ),
    "dynsym-name-outside": (
        lambda p: _patch(p, sum(_section(p, ".dynsym")[2:]) - 24, "<I", 0x7FFFFFFF),
        "a symbol's name lies outside its string table",
    ),
    "dynstr-unterminated": (
        lambda p: _patch(p, sum(_section(p, ".dynstr")[2:]) - 1, "<B", 0x41),
        "does not end with a NUL",
    ),
    "dynamic-without-end": (_no_dynamic_end, "no DT_NULL"),
    "soname-outside": (_soname_outside, "the soname lies outside its string table"),
    "dynamic-links-nowhere": (
        lambda p: _patch(p, _section(p, ".dynamic")[1] + 40, "<I", 0),
        "links to section 0",
    ),
    "rodata-compressed": (
        lambda p: _set_bits(p, _section(p, ".rodata")[1] + 8, "<Q", 0x800),
        "section .rodata is compressed",
    ),
    "names-not-strings": (
        lambda p: _patch(p, _section(p, ".shstrtab")[1] + 4, "<I", 1),
        "the section name table is not a string table",
    ),
    "200000-sections": (_many_sections, "has 200000 entries (more than 65535)"),
}


@pytest.mark.parametrize("corrupt,says", TABLES.values(), ids=TABLES.keys())
def test_tables_are_checked_before_pyelftools_follows_them(
    tmp_path: Path, corrupt: Callable[[Path], None], says: str
) -> None:
    """pyelftools follows what the file says: a hash chain to its odd word, dynamic
    tags to DT_NULL, a name to its NUL, a link to any header. Each is checked first,
    so every lookup (as the recorder makes them) is one error saying what is wrong."""
    copy = tmp_path / LIBPYTHON311.name
    shutil.copy(LIBPYTHON311, copy)
    corrupt(copy)
    with pytest.raises(ElfError) as caught:
        with ElfImage(str(copy)) as image:
            _exercise(image, copy.stat().st_size)
    assert str(caught.value).startswith(f"{copy} is a corrupt ELF file: ")
    assert says in str(caught.value)
