"""--native-lines: native frames get the source file and line binutils' addr2line gives
for the same address (the real reader of DWARF line tables), from a recording of the
test-built C extension (compiled with -g) and pyenv's libpython; without the flag,
nothing changes."""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from native_ext import build, collapsed
from pythons import recordable

from flamekit.symbolize.native import NativeSymbolizer, ObjectFinder
from flamekit.trace import load

ROOT = Path(__file__).resolve().parent.parent
TARGET = str(ROOT / "tests" / "targets" / "native_spin.py")
SOURCE = ROOT / "tests" / "native" / "spinext.c"


def _addr2line(path: str, offsets: list[int]) -> list[tuple[str, int] | None]:
    out = subprocess.run(
        ["addr2line", "-e", path, *(hex(o) for o in offsets)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    got = []
    for line in out:
        file, _, num = line.rpartition(":")
        num = num.split()[0]  # "12 (discriminator 3)"
        got.append((file, int(num)) if num.isdigit() and file != "??" and int(num) else None)
    return got


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    interp = next(i for i in recordable() if i.id == "3.12")
    tmp = tmp_path_factory.mktemp("lines")
    try:
        ext = build(interp, tmp)
    except LookupError as exc:
        pytest.skip(str(exc))
    out = tmp / "n.fkt"
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "--native", "-r", "300", "-o",
         str(out), "--", interp.path, TARGET, str(ext), "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.skipif(shutil.which("addr2line") is None, reason="binutils' addr2line is missing")
def test_lines_are_addr2lines(recording):
    tr = load(recording)
    pid = tr.header.pid
    symbolizer = NativeSymbolizer(tr.native_objects, ObjectFinder(), lines=True)
    spans = sorted(
        (a, b, o) for o in tr.native_objects[pid] for a, b, _, _ in o.ranges
    )  # fmt: skip
    looked: dict[str, dict[int, tuple[str, int] | None]] = {}
    for nid in set(tr.native):
        if not nid:
            continue
        ips, _ = tr.native_stacks[nid]
        for k, ip in enumerate(ips):
            obj = next((o for a, b, o in spans if a <= ip < b), None)
            if obj is None or not ("spinext" in obj.path or "libpython" in obj.path):
                continue
            name = symbolizer.name(pid, ip, k > 0)
            off = ip - obj.bias - (1 if k > 0 else 0)
            looked.setdefault(obj.path, {})[off] = (
                None if name.source is None else (name.source, name.line)
            )  # fmt: skip
    assert any("spinext" in p for p in looked) and any("libpython" in p for p in looked)
    compared = 0
    for path, ours in looked.items():
        offsets = sorted(ours)
        for off, want in zip(offsets, _addr2line(path, offsets)):
            assert ours[off] == want, (path, hex(off), ours[off], want)
            compared += ours[off] is not None
    assert compared >= 20, compared


def test_convert_native_lines_shows_the_c_line_and_without_it_nothing_changes(recording, tmp_path):
    body = SOURCE.read_text().splitlines()
    start = next(i for i, line in enumerate(body, 1) if "flamekit_spin_in_c(" in line)
    end = next(i for i, line in enumerate(body, 1) if i > start and line == "}")

    def folded(*flags: str) -> str:
        return collapsed(recording, tmp_path / f"n{len(flags)}.txt", *flags)

    with_lines = folded("--native-lines")
    lines = [
        int(m) for m in re.findall(r"flamekit_spin_in_c \(spinext\.c:(\d+)\) \[spinext", with_lines)
    ]
    assert lines and all(start <= n <= end for n in lines), (lines, start, end)
    plain = folded()
    assert "(spinext.c:" not in plain and "flamekit_spin_in_c [spinext" in plain

    def total(text: str) -> int:
        return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines())

    assert total(with_lines) == total(plain)


@given(st.binary(max_size=2000), st.integers(0, 1 << 48))
def test_any_bytes_give_no_line_and_no_error(data, address):
    from flamekit.symbolize.native_lines import LineTable

    table = LineTable(io.BytesIO(data))
    assert table.place(address) is None


#: removed when the test process exits (the extension is built once for the module)
_BUILD_DIR = tempfile.TemporaryDirectory(prefix="flamekit-native-lines-")


@functools.lru_cache(maxsize=1)
def _built() -> Path | str:
    """The extension built once for the module (or why it could not be)."""
    interp = next(i for i in recordable() if i.id == "3.12")
    try:
        return next(p for p in build(interp, Path(_BUILD_DIR.name)).iterdir() if p.suffix == ".so")
    except LookupError as exc:
        return str(exc)


@settings(max_examples=30)
@given(st.data())
def test_a_damaged_object_gives_a_place_or_none(data):
    """The test-built extension with bytes of its DWARF line table changed: a place or
    None, never an exception (the file is the target's, not trusted)."""
    from elftools.elf.elffile import ELFFile

    from flamekit.symbolize.native_lines import LineTable

    so = _built()
    if isinstance(so, str):
        pytest.skip(so)
    raw = bytearray(so.read_bytes())
    with so.open("rb") as f:
        sec = ELFFile(f).get_section_by_name(".debug_line")
        lo, size = sec["sh_offset"], sec["sh_size"]
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(lo, lo + size - 1))] = data.draw(st.integers(0, 255))
    table = LineTable(io.BytesIO(bytes(raw)))
    got = table.place(data.draw(st.integers(0, 0x3000)))
    assert got is None or (isinstance(got[0], str) and got[1] > 0)


def test_dump_native_lines_gives_the_c_frame_its_line(recording):
    """dump --native --native-lines: the C function's frame says its source file and a
    line of its body (JSON ``source`` and ``line``; the text ``(spinext.c:N)``)."""
    import json
    import time

    del recording  # the extension is built; the target runs it here
    so = _built()
    if isinstance(so, str):
        pytest.skip(so)
    interp = next(i for i in recordable() if i.id == "3.12")
    body = SOURCE.read_text().splitlines()
    start = next(i for i, line in enumerate(body, 1) if "flamekit_spin_in_c(" in line)
    end = next(i for i, line in enumerate(body, 1) if i > start and line == "}")
    p = subprocess.Popen([interp.path, TARGET, str(so.parent), "600"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        for as_json in (True, False):
            r = subprocess.run(
                [sys.executable, "-m", "flamekit", "dump", "--native", "--native-lines",
                 *(["--json"] if as_json else []), "-p", str(p.pid)],
                capture_output=True, text=True, timeout=60, cwd=ROOT,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            if as_json:
                frames = json.loads(r.stdout)["threads"][0]["frames"]
                c = next(f for f in frames if f["function"] == "flamekit_spin_in_c")
                assert c["native"] and c["source"] == str(SOURCE), c
                assert start <= c["line"] <= end, c
                assert all("source" not in f for f in frames if not f.get("native")), frames
            else:
                m = re.search(r"flamekit_spin_in_c \(spinext\.c:(\d+)\) \[spinext", r.stdout)
                assert m and start <= int(m.group(1)) <= end, r.stdout
    finally:
        p.kill()
        p.wait()
