"""The recording session called from Python (flamekit.record.session.record): what
``flamekit record`` does, without the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pythons import recordable
from test_record_e2e import wait_ready

from flamekit.errors import UsageError
from flamekit.record.session import RecordOptions, record
from flamekit.trace import load

COUNTER = Path(__file__).resolve().parent / "targets" / "record_counter.py"


def test_a_launched_command_recorded_from_python(tmp_path: Path) -> None:
    interp = recordable()[-1]
    out = tmp_path / "run.fkt"
    seen: list[tuple[float, int, int, int]] = []
    result = record(
        command=[interp.path, str(COUNTER), str(tmp_path / "ready.json"), "1.5"],
        output=str(out),
        options=RecordOptions(rate_hz=200),
        on_progress=lambda *figures: seen.append(figures),
    )
    trace = load(out)
    assert result.path == str(out) and result.size_bytes == out.stat().st_size
    assert result.reason == "target-exited" and result.child_status == 0
    assert not result.child_stopped
    assert trace.end is not None and trace.end.reason == "target-exited"
    assert result.samples == len(trace) == trace.end.samples > 100
    assert result.errors == trace.end.errors
    # one progress call a tick, the figures only growing, the last one the result's
    assert len(seen) >= result.sampled_ticks > 100
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)
    assert seen[-1][1:] == (result.samples, result.sampled_ticks, result.errors)
    assert 150 < result.effective_hz <= 210
    names = {c.name for c in trace.codes.values()}
    assert {"busy", "count_round"} <= names


def test_a_duration_stops_the_launched_command(tmp_path: Path) -> None:
    interp = recordable()[-1]
    out = tmp_path / "run.fkt"
    result = record(
        command=[interp.path, str(COUNTER), str(tmp_path / "ready.json")],
        output=str(out),
        options=RecordOptions(rate_hz=100, duration_s=0.8),
    )
    assert result.reason == "duration" and result.child_stopped
    assert load(out).end.reason == "duration"


def test_an_attached_process_is_released_running(tmp_path: Path) -> None:
    interp = recordable()[0]
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen([interp.path, str(COUNTER), str(ready)], stdout=subprocess.DEVNULL)
    try:
        wait_ready(ready, lambda: proc.poll() is None)
        result = record(
            pid=proc.pid,
            output=str(tmp_path / "run.fkt"),
            options=RecordOptions(rate_hz=100, duration_s=0.5),
        )
        assert result.reason == "duration" and result.samples > 0
        assert not result.child_stopped and result.child_status is None
        assert proc.poll() is None
        with open(f"/proc/{proc.pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        assert state in ("R", "S"), state
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "nothing to record"),
        ({"pid": 1, "command": [sys.executable]}, "not both"),
        ({"pid": 1, "options": RecordOptions(rate_hz=200_000)}, "at most 100000"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, kwargs: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        record(output=str(tmp_path / "x.fkt"), **kwargs)
    assert not list(tmp_path.iterdir())
