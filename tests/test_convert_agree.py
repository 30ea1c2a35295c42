"""Every format tells the same story: the hottest function and its share, end to end.

Each synthetic trace goes through ``flamekit convert --to FORMAT`` (the real command, one
process per format) with the same filters; each output is read back by an independent
decoder (tests/readers/decode.py). All five must agree on the total, on which function
is hottest (by self samples) and on its share, within one sample.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from readers import decode

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

FORMATS = {
    "collapsed": decode.collapsed,
    "speedscope": lambda b: decode.speedscope(b)[0],
    "cpuprofile": decode.cpuprofile,
    "svg": decode.svg,
    "pprof": lambda b: decode.pprof(b)[0],
}

CASES = {
    "default": [],
    "threads": ["--threads"],
    "idle-no-lines": ["--idle", "--no-lines"],
    "gil-window": ["--gil", "--from", "0.5", "--until", "2.5"],
}


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("agree") / "run.fkt"
    with open(p, "wb") as f:
        # <= 11,800 samples: no SVG frame is too narrow to draw at 1200 px
        write_synthetic(f, samples=10000, stacks=200, threads=3, seed=7)
    return p


@pytest.mark.parametrize("case", list(CASES))
def test_all_formats_agree_on_the_hottest_function(trace_path: Path, case: str):
    args = CASES[case]
    prof = build_profile(load(trace_path))
    sel = select(
        prof,
        FilterOptions(
            threads="--threads" in args,
            idle="--idle" in args,
            gil="--gil" in args,
            start_s=0.5 if "--from" in args else None,
            until_s=2.5 if "--until" in args else None,
        ),
    )
    procs = {
        fmt: subprocess.Popen(
            [sys.executable, "-m", "flamekit", "convert", str(trace_path), "--to", fmt, "-o", "-"]
            + args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for fmt in FORMATS
    }
    seen = {}
    for fmt, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        seen[fmt] = FORMATS[fmt](out)
    for fmt, counts in seen.items():
        assert counts.total == len(sel), fmt
    name, n = seen["collapsed"].hottest()
    for fmt, counts in seen.items():
        assert counts.hottest()[0] == name, (fmt, counts.hottest(), name)
        assert abs(counts.self_by_function[name] - n) <= 1, fmt


def test_speedscope_time_shares_follow_the_sample_shares(trace_path: Path):
    """speedscope weighs by time, not count: with a steady sampler the two agree closely."""
    proc = subprocess.run(
        [sys.executable, "-m", "flamekit", "convert", str(trace_path), "--to", "speedscope"]
        + ["-o", "-"],
        capture_output=True,
        timeout=120,
    )
    counts, weights = decode.speedscope(proc.stdout)
    name, n = counts.hottest()
    share_count = n / counts.total
    share_time = weights[name] / sum(weights.values())
    assert abs(share_time - share_count) < 0.01
