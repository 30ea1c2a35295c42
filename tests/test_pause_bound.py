"""The bound on how long one sample holds a paused target (record --max-pause)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_record_e2e import some

from flamekit.record.pause_bound import PauseBound
from flamekit.record.proc.pause import Pauser
from flamekit.trace import load

TARGETS = Path(__file__).resolve().parent / "targets"


def _states(pid: int) -> set[str]:
    from pathlib import Path as P

    out = set()
    for task in P(f"/proc/{pid}/task").iterdir():
        try:
            out.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass
    return out


def test_the_bound_lets_a_held_target_go() -> None:
    """Paused, armed at 2 ms, then held 50 ms by a slow step: the target runs again
    before the step ends, and disarm says so."""
    proc = subprocess.Popen([some((3, 12)).path, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        fired: list[bool] = []
        with Pauser(proc.pid) as pauser, PauseBound(0.002) as bound:
            pauser.pause()
            assert _states(proc.pid) == {"t"}
            bound.arm(pauser, lambda: fired.append(True))
            end = time.monotonic() + 0.05
            while time.monotonic() < end:  # a walk that takes too long
                pass
            assert not pauser.paused and "t" not in _states(proc.pid)
            assert bound.disarm() and bound.hits == 1 and fired == [True]
            pauser.resume()  # what the sampler does next: harmless now
            # a quick sample is not cut
            pauser.pause()
            bound.arm(pauser, lambda: fired.append(True))
            assert not bound.disarm() and bound.hits == 1
            pauser.resume()
    finally:
        proc.kill()
        proc.wait()


def _stall_ms(max_pause: str, tmp: Path) -> tuple[float, int, int]:
    """(the target's longest stall in ms, cut pauses, samples) of a 30,000-deep 3.9 stack
    recorded for 2 s at 200 Hz with ``--max-pause max_pause``."""
    out = tmp / f"deep{max_pause}.fkt"
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "-r", "200", "--max-pause",
         max_pause, "-o", str(out), "--", some((3, 9)).path, str(TARGETS / "stall_meter.py"),
         "30000", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    trace = load(out)
    return report["max_stall_ms"], trace.end.cut_pauses, len(trace)


def test_a_deep_stack_is_held_at_most_about_the_bound(tmp_path: Path) -> None:
    """A 30,000-deep stack on 3.9 takes tens of milliseconds to walk: unbounded, each
    sample held the target that long (a 50,000-deep one up to 165 ms); at the 5 ms
    default the target runs on while the walk ends. Compared in one run, both ways."""
    unbounded, cut0, n0 = _stall_ms("0", tmp_path)
    bounded, cut5, n5 = _stall_ms("5", tmp_path)
    assert cut0 == 0 and n0 > 0
    assert cut5 > 0 and n5 > 0
    if unbounded < 20:
        pytest.skip(f"precondition not met: an unbounded walk held the target {unbounded} ms")
    assert bounded < unbounded / 2, (bounded, unbounded)


def test_info_reports_the_cut_pauses(tmp_path: Path) -> None:
    _stall_ms("1", tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "info", "--json", str(tmp_path / "deep1.fkt")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cut_pauses"] > 0
