"""End to end on a real recording: record the bundled demo, convert it to every format,
and find the same hottest function with the same share (within one sample) in each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pythons import recordable
from test_convert_agree import FORMATS

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.trace import load

DEMO = Path(__file__).resolve().parent.parent / "formats" / "examples" / "demo.py"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    py = next(i for i in recordable() if i.id == "3.12")
    out = tmp_path_factory.mktemp("real") / "demo.fkt"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flamekit",
            "record",
            "-q",
            "-r",
            "500",
            "-o",
            str(out),
            "--",
            py.path,
            str(DEMO),
            "1.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return out


def test_every_format_agrees_on_a_real_recording(recording: Path):
    trace = load(recording)
    assert not trace.truncated and trace.end.reason == "target-exited"
    sel = select(build_profile(trace), FilterOptions())
    assert len(sel) > 300
    seen = {}
    for fmt, read in FORMATS.items():
        p = subprocess.run(
            [sys.executable, "-m", "flamekit", "convert", str(recording), "--to", fmt, "-o", "-"],
            capture_output=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr.decode()
        seen[fmt] = read(p.stdout)
    for fmt, counts in seen.items():
        assert counts.total == len(sel), fmt
    name, n = seen["collapsed"].hottest()
    assert "parse_record" in name  # the demo spends most of its CPU there by construction
    for fmt, counts in seen.items():
        assert counts.hottest()[0] == name, (fmt, counts.hottest(), name)
        assert abs(counts.self_by_function[name] - n) <= 1, fmt
