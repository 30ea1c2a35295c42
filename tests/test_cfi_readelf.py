"""The unwinder's rule tables read as binutils reads them: every row of every FDE of the
C++ runtime and of libc, as ``readelf --debug-dump=frames-interp`` interprets it (the
CFA, the return address's slot, rbp's slot), is the rule our table gives at that address.

libstdc++ is C++: 146 of its FDEs note DW_CFA_GNU_args_size around calls, which the
decoder once rejected, cutting every stack at such a frame (numpy's, at its first C++
function)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flamekit.record.proc.cfi import EXPR, RBP, RSP, UnwindTable
from flamekit.record.proc.elf import ElfImage

LIBS = [
    p
    for p in (
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libc.so.6",
    )
    if Path(p).exists()
]
_FDE = re.compile(r"^\S+ \S+ \S+ FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)$")
_REGS = {"rsp": RSP, "rbp": RBP}


def _readelf_rows(path: str) -> list[tuple[int, int, str, str, str | None]]:
    """(pc, FDE end, CFA, ra, rbp) for each row readelf interprets; an FDE with no rows
    of its own has the CIE's (CFA rsp+8, ra c-8)."""
    # readelf exits 1 on a note it cannot read elsewhere in the file (libc's): the frames
    # are printed all the same
    out = subprocess.run(
        ["readelf", "-W", "--debug-dump=frames-interp", path],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    rows = []
    i = 0
    while i < len(out):
        m = _FDE.match(out[i])
        i += 1
        if not m:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        if i >= len(out) or not out[i].strip().startswith("LOC"):
            rows.append((start, end, "rsp+8", "c-8", None))
            continue
        cols = out[i].split()
        i += 1
        while i < len(out) and out[i].strip():
            cells = out[i].split()
            i += 1
            if "(" in out[i - 1]:
                continue  # a register kept in another ("r10 (r10)"): not a rule we take
            row = dict(zip(cols, cells))
            rows.append((int(cells[0], 16), end, row["CFA"], row.get("ra", "u"), row.get("rbp")))
    return rows


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is not installed")
@pytest.mark.parametrize("path", LIBS)
def test_every_row_is_readelfs(path):
    table = UnwindTable(ElfImage(path))
    rows = _readelf_rows(path)
    assert len(rows) >= 1000, len(rows)
    checked = 0
    for pc, _end, cfa, ra, rbp in rows:
        rule = table.rule(pc)
        assert rule is not None, (path, hex(pc), cfa)
        reg, off, ra_off, bp_off, _expr = rule
        if cfa == "exp":
            assert reg in (EXPR, -1), (hex(pc), rule)
        else:
            m = re.fullmatch(r"(rsp|rbp)\+(\d+)", cfa)
            if m is None:
                continue  # another register: not a row our unwinder takes
            assert (reg, off) == (_REGS[m.group(1)], int(m.group(2))), (hex(pc), cfa, rule)
        want_ra = int(ra[1:]) if ra.startswith("c") else None
        assert ra_off == want_ra, (hex(pc), ra, rule)
        if rbp == "exp":  # saved at an address an expression computes
            assert bp_off is None or isinstance(bp_off, tuple), (hex(pc), rbp, rule)
        else:
            want_bp = int(rbp[1:]) if rbp and rbp.startswith("c") else None
            assert bp_off == want_bp, (hex(pc), rbp, rule)
        checked += 1
    assert checked >= 0.95 * len(rows)
