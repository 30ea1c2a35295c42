"""Usage errors that click itself catches (a bad type, a missing or unknown option) are one
line naming the option, exit 2, like every other flamekit error; never click's usage
block or a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = str(
    Path(__file__).resolve().parent.parent / "formats" / "examples" / "synthetic-small.fkt"
)

CASES = [
    (["convert", EXAMPLE, "--to", "svg", "--from", "abc"], "'--from'", "flamekit convert"),
    (["convert", EXAMPLE, "--to", "svg", "--thread", "-5"], "'--thread'", "flamekit convert"),
    (["convert", EXAMPLE], "'--to'", "flamekit convert"),
    (["diff", EXAMPLE, EXAMPLE, "--to", "xml"], "'xml'", "flamekit diff"),
    (["diff", EXAMPLE, EXAMPLE, "--top", "many"], "'--top'", "flamekit diff"),
    (["top", EXAMPLE, "-n", "x"], "'-n'", "flamekit top"),
    (["info", "--bogus", EXAMPLE], "'--bogus'", "flamekit info"),
    (["bogus"], "'bogus'", "flamekit"),
]


@pytest.mark.parametrize(
    "argv,names,where", CASES, ids=[" ".join(c[0][:1] + c[0][2:]) for c in CASES]
)
def test_click_usage_errors_are_one_line(argv: list[str], names: str, where: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", *argv], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("flamekit: error: ") and names in lines[0], lines[0]
    assert f"(see '{where} --help')" in lines[0], lines[0]
