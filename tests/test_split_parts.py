"""Split-off function parts (``f.cold``) named in stripped objects from their call-frame
information: checked against the truth of the same objects unstripped (pyenv's
libpython builds keep ``.symtab``, which names every part), and the ``.eh_frame`` reader
against sections built here."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythons import pyenv_root

from flamekit.symbolize.native import SymbolTable
from flamekit.symbolize.split_parts import fdes, split_parts

LIBPYTHONS = sorted(pyenv_root().glob("versions/3.*/lib/libpython3.*.so.1.0"))


@pytest.mark.skipif(shutil.which("strip") is None, reason="binutils' strip is not installed")
def test_stripped_libpython_names_its_cold_parts_as_its_symtab_does(tmp_path):
    """Each of pyenv's libpython 3.6-3.13, stripped to ``.dynsym``: every part we name
    ``f.cold`` is the ``.symtab``'s ``f.cold`` at that address, and most of the split
    parts of exported functions are found (the ones missed are parts that start in no
    frame of their own, a few bytes long: measured 39 of 51)."""
    assert len(LIBPYTHONS) >= 6, LIBPYTHONS
    wanted = found = 0
    for lib in LIBPYTHONS:
        stripped = tmp_path / lib.name
        subprocess.run(["strip", "--strip-all", "-o", str(stripped), str(lib)], check=True)
        full, _ = SymbolTable.read(str(lib))
        ours, _ = SymbolTable.read(str(stripped))
        truth = {start: name for start, _, name in full.rows}
        exported = {name for _, _, name in ours.rows if not name.endswith(".cold")}
        named = [r for r in ours.rows if r[2].endswith(".cold")]
        for start, size, name in named:
            assert truth.get(start) == name, (lib, hex(start), name, truth.get(start))
            assert full.name(start + size - 1) == name, (lib, hex(start), name)
        want = {r for r in full.rows if r[2].endswith(".cold") and r[2][:-5] in exported}
        wanted += len(want)
        found += len(want & set(named))
    assert wanted >= 20 and found >= 0.7 * wanted, (found, wanted)


# --- the .eh_frame reader, against sections built here --------------------------------

_CIE_BODY = (
    b"\0\0\0\0"  # CIE id
    + b"\x01zR\0"  # version 1, augmentation "zR"
    + b"\x01"  # code alignment 1
    + b"\x78"  # data alignment -8
    + b"\x10"  # return address register 16
    + b"\x01\x1b"  # augmentation data: 1 byte, FDE pointers pcrel | sdata4
    + b"\x0c\x07\x08\x90\x01"  # CFA = rsp + 8; ra at cfa - 8
)
#: a first instruction: (bytes, whether it sets a rule at the FDE's first address)
_FIRST = [
    (b"", False),
    (b"\x41", False),  # advance_loc 1
    (b"\x02\x10", False),  # advance_loc1 16
    (b"\x0e\x10", True),  # def_cfa_offset 16
    (b"\x0c\x06\x10", True),  # def_cfa rbp+16
    (b"\x86\x02", True),  # offset rbp, cfa-16
    (b"\x2e\x08", False),  # GNU_args_size: no rule
]


def _section(entries: list[tuple[int, int, int]], address: int) -> bytes:
    """An .eh_frame at ``address``: one CIE, then an FDE per (start, size, first)."""

    def entry(body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<I", len(body)) + body

    out = entry(_CIE_BODY)
    for start, size, first in entries:
        at = len(out)
        body_at = at + 4
        pc_field = address + body_at + 4
        body = (
            struct.pack("<I", body_at)  # distance back to the CIE at offset 0
            + struct.pack("<i", start - pc_field)
            + struct.pack("<i", size)
            + b"\0"  # augmentation data: none
            + _FIRST[first][0]
        )
        out += entry(body)
    return out + b"\0\0\0\0"


@given(
    address=st.integers(0x1000, 0x7FFF_0000),
    entries=st.lists(
        st.tuples(
            st.integers(0, 0x7FFF_FFFF), st.integers(1, 1 << 20), st.integers(0, len(_FIRST) - 1)
        ),  # fmt: skip
        max_size=30,
    ),
)
def test_fdes_read_back_as_built(address, entries):
    got = fdes(_section(entries, address), address)
    assert got == [(s, n, _FIRST[f][1]) for s, n, f in entries]


@given(st.binary(max_size=400), st.integers(0, 1 << 40))
def test_fdes_of_any_bytes_never_raise(data, address):
    got = fdes(data, address)
    assert isinstance(got, list)


@given(st.data())
def test_fdes_of_a_damaged_section_never_raise(data):
    section = bytearray(_section([(0x5000, 64, 3), (0x6000, 32, 1), (0x7000, 8, 5)], 0x1000))
    for _ in range(data.draw(st.integers(1, 4))):
        section[data.draw(st.integers(0, len(section) - 1))] = data.draw(st.integers(0, 255))
    got = fdes(bytes(section), 0x1000)
    assert isinstance(got, list)


@given(
    hot=st.integers(0x10_0000, 0x20_0000),
    cold=st.integers(0x1000, 0xF_0000),
    size=st.integers(1, 4096),
    at=st.integers(0, 200),
    how=st.sampled_from(["jmp", "jcc", "call", "none"]),
    mid=st.booleans(),
)
def test_a_part_is_named_only_when_its_function_jumps_into_it_mid_frame(
    hot, cold, size, at, how, mid
):
    """The FDE after ``f``'s, entered mid-frame, is ``f.cold`` when ``f`` jumps into it
    (``jmp``/``jcc``); a call (a function of its own, tail-called or not) or no branch
    at all leaves it unnamed, and so does an FDE that starts in no frame."""
    target = cold + size // 2
    body = bytearray(b"\x90" * 256)  # nops
    insn = {"jmp": b"\xe9", "jcc": b"\x0f\x85", "call": b"\xe8", "none": b""}[how]
    if insn:
        end = hot + at + len(insn) + 4
        body[at : at + len(insn) + 4] = insn + struct.pack("<i", target - end)
    got = split_parts(
        [(hot, 256, False), (cold, size, mid)],
        [(hot, 256, "f")],
        lambda start, n: bytes(body[start - hot : start - hot + n]),
    )
    named = mid and how in ("jmp", "jcc")
    assert got == ([(cold, size, "f.cold")] if named else [])
