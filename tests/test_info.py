"""`flamekit info`: the facts of a trace, truncation as a warning, bad input as one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flamekit.trace import records as R
from flamekit.trace.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "formats" / "examples"


def flamekit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=900, stacks=20, threads=3, rate_hz=100.0, idle_share=0.0)
    return p


def test_json_summary_matches_what_was_written(synthetic: Path):
    r = flamekit("info", "--json", str(synthetic))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["samples"] == 900
    assert s["complete"] is True and s["end_reason"] == "duration"
    assert s["sampling_errors"] == 0
    assert [t["samples"] for t in s["threads"]] == [300, 300, 300]
    assert [t["name"] for t in s["threads"]] == ["MainThread", "worker-1", "worker-2"]
    assert s["pid"] == 4242 and s["rate_hz"] == 100.0
    # 300 sampling instants at ~100 Hz: about 3 s, and the effective rate says so
    assert 2.9 < s["duration_s"] < 3.1
    assert 95 < s["effective_rate_hz"] < 105
    assert s["bytes_per_sample"] == round(os.path.getsize(synthetic) / 900, 2)


def test_text_summary_names_the_facts(synthetic: Path):
    r = flamekit("info", str(synthetic))
    assert r.returncode == 0 and r.stderr == ""
    out = r.stdout
    assert "complete (ended: duration)" in out
    assert "900 (" in out and "worker-2" in out and "pid 4242" in out


def test_truncated_trace_is_a_warning(synthetic: Path, tmp_path: Path):
    cut = tmp_path / "cut.fkt"
    data = synthetic.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = flamekit("info", "--json", str(cut))
    assert r.returncode == 0
    s = json.loads(r.stdout)
    assert s["complete"] is False and 0 < s["samples"] < 900
    assert r.stderr.count("\n") == 1 and "truncated" in r.stderr and str(cut) in r.stderr
    assert f"read {s['samples']:,} samples" in r.stderr


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, not a trace\n"), "not an FKT trace"),
        (lambda p: p.write_bytes(R.MAGIC[:5]), "cut off before its header"),
        (lambda p: p.write_bytes(R.MAGIC + b"\x01\x00\x00\x00" + b"\xc1"), "corrupt"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make, words):
    p = tmp_path / "bad.fkt"
    make(p)
    r = flamekit("info", str(p))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert words in r.stderr and str(p) in r.stderr


NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


@pytest.mark.parametrize(
    "argv",
    [["info"], ["top"], ["convert", "--to", "collapsed", "-o", "-"], ["diff", "{ok}"]],
    ids=["info", "top", "convert", "diff"],
)
def test_unreadable_file_is_one_line_and_exit_2(synthetic: Path, argv: list[str]):
    """A trace the user may not read (root's 0600 file, read as nobody): one line that
    names the file and says permission denied, exit 2, for every command that reads."""
    assert os.geteuid() == 0, "this test switches to user nobody: run the suite as root"
    shared = Path(tempfile.mkdtemp(prefix="flamekit-perm-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        secret, ok = shared / "secret.fkt", shared / "ok.fkt"
        secret.write_bytes(synthetic.read_bytes())
        secret.chmod(0o600)
        ok.write_bytes(synthetic.read_bytes())
        ok.chmod(0o644)
        args = [a.replace("{ok}", str(ok)) for a in argv]
        r = subprocess.run(
            [*NOBODY, sys.executable, "-m", "flamekit", args[0], str(secret), *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=shared,
        )
    finally:
        shutil.rmtree(shared)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    why = r.stderr.lower()
    assert str(secret) in r.stderr and ("permission denied" in why or "not readable" in why), why


def test_every_example_trace_is_what_its_manifest_says():
    manifest = json.loads((EXAMPLES / "manifest.json").read_text())
    files = sorted(p.name for p in EXAMPLES.glob("*.fkt"))
    assert files == sorted(manifest), "every example is described, every description exists"
    for name, facts in manifest.items():
        r = flamekit("info", "--json", str(EXAMPLES / name))
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        for key, want in facts.items():
            if key == "thread_names":
                assert sorted(t["name"] for t in s["threads"]) == sorted(want), name
            else:
                assert s[key] == want, (name, key)
        assert ("truncated" in r.stderr) == (not facts["complete"])


def test_effective_rate_counts_late_ticks(tmp_path: Path) -> None:
    """A tick that ran late is followed by the next one on the schedule, sooner than a
    period after it: still two sampling instants. (Merging instants closer than a quarter
    of the period put info's rate 9% under the recorder's own count on a loaded machine.)"""
    from flamekit.analysis.summary import summarize
    from flamekit.trace import TraceWriter, load

    period = 1_000_000  # 1000 Hz
    path = tmp_path / "late.fkt"
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("0.1.0", 0, 0, 1000.0, 4242))
        w.write(R.Thread(0, 4242, 4242, 1, "MainThread", 0))
        w.write(R.Thread(1, 4242, 4243, 2, "worker", 0))
        t = 0
        instants = 0
        for k in range(1000):
            due = (k + 1) * period
            # every third tick runs 0.9 periods late, 150 us before the next is due
            t = due + (period - 150_000 if k % 3 == 1 else 0)
            for thread in (0, 1):  # both threads stamped with the instant's time
                w.sample(t, thread, 0)
            instants += 1
        w.close("duration", end_ns=t + period)
    s = summarize(load(path))
    assert s["effective_rate_hz"] == round(instants / s["duration_s"], 2)


def test_text_escapes_every_fact_from_the_file(tmp_path: Path):
    """Header fields, process and thread names and the recorder's error come from the
    target: in the text they are escaped (one fact, one line, no terminal control), in
    the JSON they are exact."""
    from flamekit.codeformat import LINETABLE_NONE
    from flamekit.trace import TraceWriter

    esc = "\x1b]0;pwned\x07\x1b[31m\n\x9b\u2028"
    shown = "\\x1b]0;pwned\\x07\\x1b[31m\\x0a\\x9b\\u2028"
    p = tmp_path / "hostile.fkt"
    with open(p, "wb") as f:
        header = R.Header(
            "v" + esc,
            0,
            0,
            100.0,
            7,
            ("python", "a" + esc),
            "3.12" + esc,
            "h" + esc,
            "k" + esc,
            {"m" + esc: True},
        )
        w = TraceWriter(f, header)
        w.write(R.Process(7, 1, ("sub" + esc,), 0))
        w.write(R.Code(1, 7, 0x10, "f", None, "f.py", 1, b"", LINETABLE_NONE))
        w.write(R.Thread(0, 7, 11, 1, "t" + esc, 0))
        w.sample(1000, 0, w.stack_id(((1, 0),)))
        w.close("error", error="e" + esc)
    r = flamekit("info", str(p))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert not any(c in out.replace("\n", "") for c in "\x1b\x07\x9b\u2028")
    for fact in ("v", "a", "3.12", "h", "k", "m", "sub", "t", "e"):
        assert fact + shown in out, fact
    # 12 facts, the process table's 3 lines (title, head, one row), the thread table's 3
    assert len(out.splitlines()) == 18
    s = json.loads(flamekit("info", "--json", str(p)).stdout)
    assert s["threads"][0]["name"] == "t" + esc and s["end_error"] == "e" + esc


# -- the mode in words -----------------------------------------------------------------


def _mode_trace(path: Path, mode: dict[str, bool]) -> Path:
    from flamekit.trace.writer import TraceWriter

    with open(path, "wb") as f:
        TraceWriter(f, R.Header("t", 0, 0, 100.0, 1, mode=mode)).close("duration")
    return path


def _mode_line(path: Path) -> str:
    r = flamekit("info", str(path))
    assert r.returncode == 0, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("mode:")]
    return line.split(":", 1)[1].split(";")[0].strip()


@pytest.mark.parametrize("launched", [True, False])
@pytest.mark.parametrize("pausing", [True, False])
@pytest.mark.parametrize("gil_only", [True, False])
@pytest.mark.parametrize("subprocesses", [True, False])
def test_info_names_every_mode_in_words(
    tmp_path: Path, launched: bool, pausing: bool, gil_only: bool, subprocesses: bool
) -> None:
    """``mode: attached, non-blocking`` rather than ``default`` (what an attached
    non-blocking recording said, listing only the flags that were true)."""
    mode = {"pausing": pausing, "gil_only": gil_only, "launched": launched,
            "subprocesses": subprocesses}  # fmt: skip
    want = [
        "launched" if launched else "attached",
        "pausing" if pausing else "non-blocking",
        *(["GIL only"] if gil_only else []),
        *(["following subprocesses"] if subprocesses else []),
    ]
    assert _mode_line(_mode_trace(tmp_path / "m.fkt", mode)) == ", ".join(want)


def test_info_mode_of_a_partial_or_newer_header(tmp_path: Path) -> None:
    """A flag the header lacks is not guessed; one of a newer recorder is named, not hidden."""
    assert _mode_line(_mode_trace(tmp_path / "a.fkt", {"pausing": True})) == "pausing"
    assert _mode_line(_mode_trace(tmp_path / "b.fkt", {})) == "unknown"
    newer = {"pausing": False, "launched": False, "native": True, "other": False}
    assert _mode_line(_mode_trace(tmp_path / "c.fkt", newer)) == "attached, non-blocking, native"


SLEEPER = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"


@pytest.mark.parametrize("launched", [True, False], ids=["launched", "attached"])
@pytest.mark.parametrize("pausing", [True, False], ids=["pausing", "nonblocking"])
@pytest.mark.parametrize("gil_only", [True, False], ids=["gil", "all"])
def test_info_mode_of_a_real_recording(
    tmp_path: Path, launched: bool, pausing: bool, gil_only: bool
) -> None:
    """Every combination the recorder can make, recorded from a real process, reads back
    in words (the header's flags come from the recorder itself, not a test's dict)."""
    out = tmp_path / "run.fkt"
    opts = ["-q", "-d", "0.3", "-o", str(out)]
    opts += [] if pausing else ["--nonblocking"]
    opts += ["--gil"] if gil_only else []
    target = None
    if launched:
        argv = [*opts, "--", sys.executable, "-c", SLEEPER]
    else:
        target = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE)
        assert target.stdout is not None and target.stdout.readline() == b"ready\n"
        argv = [*opts, "-p", str(target.pid)]
    try:
        r = flamekit("record", *argv)
    finally:
        if target is not None:
            target.kill()
            target.wait()
    assert r.returncode == 0, r.stderr
    want = ["launched" if launched else "attached", "pausing" if pausing else "non-blocking"]
    assert _mode_line(out) == ", ".join(want + (["GIL only"] if gil_only else []))
