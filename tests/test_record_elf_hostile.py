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
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

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


# -- where things are in a real file (found with pyelftools, not the code under test) --


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
]  # fmt: skip


@pytest.mark.parametrize("path", _real_files(), ids=os.path.basename)
def test_real_files_read_as_pyelftools_reads_them(path: str) -> None:
    """The parser against pyelftools on every real interpreter file: segments,
    sections, soname, exported symbols (hash tables) and static ones (.symtab)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [
            (s["p_vaddr"], s["p_offset"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"
        ]
        sections = {
            s.name: (s["sh_addr"], s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()
        }
        table = elf.get_section_by_name(".gnu.hash") or elf.get_section_by_name(".hash")
        exported = {}
        for name in LOOKUPS:
            sym = table.get_symbol(name)
            exported[name] = (
                None if sym is None or sym["st_shndx"] == "SHN_UNDEF" else sym["st_value"]
            )
        symtab = elf.get_section_by_name(".symtab")
        static = {}
        for name in LOOKUPS if symtab is not None else ():
            defined = [
                s for s in symtab.get_symbol_by_name(name) or () if s["st_shndx"] != "SHN_UNDEF"
            ]
            static[name] = defined[0]["st_value"] if defined else None
        soname = None
        for tag in elf.get_section_by_name(".dynamic").iter_tags():
            if tag.entry.d_tag == "DT_SONAME":
                soname = tag.soname
        is_pie = elf["e_type"] == "ET_DYN"
    with ElfImage(path) as image:
        assert (image.is_pie, image.loads, image.soname()) == (is_pie, loads, soname)
        got = {n: image.section(n) for n in sections}
        assert {n: (s.address, s.offset, s.size) for n, s in got.items() if s} == sections
        assert {n: image.dynamic_symbol(n) for n in LOOKUPS} == exported
        assert image.has_symtab() == (symtab is not None)
        if symtab is not None:
            assert {n: image.static_symbol(n) for n in LOOKUPS} == static
        # (pyenv's executables are small launchers: they export none of these)
        assert any(exported.values()) or os.path.getsize(path) < 100_000


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
