"""`flamekit diff` from the outside: outputs and where they go, filters, bad input.

Every failure is one line per problem on stderr with exit status 2 for bad input, never
a traceback, and never leaves an output file behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_diff import MAIN, MODE_A, MODE_B, fr, write_trace

from flamekit.trace import TraceWriter
from flamekit.trace import records as R


def flamekit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, cwd=cwd, timeout=120
    )


def ok(r: subprocess.CompletedProcess) -> str:
    text = r.stderr.decode()
    assert "Traceback" not in text, text
    assert r.returncode == 0, text
    return r.stdout.decode("utf-8")


def error_lines(r: subprocess.CompletedProcess, code: int = 2) -> list[str]:
    text = r.stderr.decode()
    assert "Traceback" not in text, text
    assert r.returncode == code, text
    lines = text.splitlines()
    assert lines and all(line.startswith("flamekit: error: ") for line in lines), text
    assert r.stdout == b""
    return lines


@pytest.fixture
def modes(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_trace(tmp_path / "a.fkt", MODE_A, thread=("MainThread", 111)),
        write_trace(tmp_path / "b.fkt", MODE_B, thread=("MainThread", 222)),
    )


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# -- outputs -----------------------------------------------------------------------------


def test_the_table_goes_to_stdout(modes: tuple[Path, Path]):
    a, b = modes
    out = ok(flamekit("diff", str(a), str(b))).splitlines()
    assert out[0].startswith(f"a: {a}") and "1,000 samples" in out[0]
    assert out[1].startswith(f"b: {b}") and "2,000 samples" in out[1]
    assert out[4].split()[:3] == ["70.00%", "30.00%", "-40.00"]
    assert out[4].endswith("parse (app.py)")
    assert len(out) == 4 + 5  # five functions, all shown
    assert listing(a.parent) == ["a.fkt", "b.fkt"]


def test_top_sort_and_lines(modes: tuple[Path, Path]):
    a, b = modes
    out = ok(flamekit("diff", str(a), str(b), "--top", "2")).splitlines()
    assert len(out) == 4 + 2 + 1 and out[-1].startswith("(3 more functions")
    out = ok(flamekit("diff", str(a), str(b), "--sort", "total", "--lines")).splitlines()
    assert "lines ranked by change in total share" in out[2]
    assert out[4].endswith("parse (app.py:10)")  # no line table: the first line


def test_json_goes_to_stdout_with_every_row(modes: tuple[Path, Path]):
    a, b = modes
    doc = json.loads(ok(flamekit("diff", str(a), str(b), "--to", "json")))
    assert doc["a"]["path"] == str(a) and doc["b"]["samples"] == 2000
    assert doc["a"]["duration_s"] == pytest.approx(1.0)
    assert len(doc["rows"]) == doc["rows_total"] == 5
    top = doc["rows"][0]
    assert (top["function"], top["status"], top["self_diff_pp"]) == ("parse", "both", -40.0)
    doc = json.loads(ok(flamekit("diff", str(a), str(b), "--to", "json", "--top", "1")))
    assert len(doc["rows"]) == 1 and doc["rows_total"] == 5


def test_difffolded_defaults_to_a_file_named_after_b(modes: tuple[Path, Path]):
    a, b = modes
    assert ok(flamekit("diff", str(a), str(b), "--to", "difffolded")) == ""
    path = b.with_suffix(".difffolded")
    assert listing(a.parent) == ["a.fkt", "b.difffolded", "b.fkt"]
    text = path.read_text()
    assert "<module> (app.py);run (app.py);parse (app.py) 1400 600\n" in text
    stdout = ok(flamekit("diff", str(a), str(b), "--to", "difffolded", "-o", "-"))
    assert stdout == text
    raw = ok(flamekit("diff", str(a), str(b), "--to", "difffolded", "-o", "-", "--no-normalize"))
    assert "<module> (app.py);run (app.py);parse (app.py) 700 600\n" in raw


def test_output_to_a_file_and_never_over_an_input(modes: tuple[Path, Path]):
    a, b = modes
    out = a.parent / "t.txt"
    assert ok(flamekit("diff", str(a), str(b), "-o", str(out))) == ""
    assert out.read_text().startswith(f"a: {a}")
    before = b.read_bytes()
    for target in (a, b):
        (line,) = error_lines(flamekit("diff", str(a), str(b), "-o", str(target)), 1)
        assert "input trace" in line
    assert b.read_bytes() == before


def test_a_trace_against_itself(modes: tuple[Path, Path]):
    a, _ = modes
    doc = json.loads(ok(flamekit("diff", str(a), str(a), "--to", "json")))
    assert all(r["self_diff_pp"] == 0 == r["total_diff_pp"] for r in doc["rows"])
    folded = ok(flamekit("diff", str(a), str(a), "--to", "difffolded", "-o", "-"))
    assert all(line.split()[-1] == line.split()[-2] for line in folded.splitlines())


# -- filters -------------------------------------------------------------------------------


def _two_threads(path: Path, tids: tuple[int, int], hot: str) -> Path:
    """Thread 0 runs ``hot`` 80% of its samples, thread 1 always runs 'idle_loop'."""
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 1000.0, 1, (), "3.12.1"))
        for ref, q in enumerate(("main", hot, "other", "idle_loop")):
            w.write(R.Code(ref + 1, 1, ref, q, q, "app.py", 1, b"", 0))
        w.write(R.Thread(0, 1, tids[0], None, "MainThread", 0))
        w.write(R.Thread(1, 1, tids[1], None, "worker", 0))
        t = 0
        hot_sid = w.stack_id(((2, 0), (1, 0)))
        other_sid = w.stack_id(((3, 0), (1, 0)))
        idle_sid = w.stack_id(((4, 0),))
        for i in range(100):
            t += 1_000_000
            w.sample(t, 0, hot_sid if i % 5 else other_sid, gil=True)
            w.sample(t, 1, idle_sid, idle=bool(i % 2))
        w.close("duration")
    return path


def test_filters_apply_to_both_sides(tmp_path: Path):
    a = _two_threads(tmp_path / "a.fkt", (10, 11), "parse")
    b = _two_threads(tmp_path / "b.fkt", (20, 21), "render")

    def rows(*opts: str) -> dict[str, dict]:
        doc = json.loads(ok(flamekit("diff", str(a), str(b), "--to", "json", *opts)))
        return {r["label"]: r for r in doc["rows"]}

    # idle samples dropped by default: 150 per side; --idle keeps all 200
    assert rows()["parse (app.py)"]["self_pct_a"] == pytest.approx(80 / 1.5)
    assert rows("--idle")["idle_loop (app.py)"]["self_pct_a"] == 50
    assert rows("--gil")["other (app.py)"]["self_pct_b"] == 20
    # --thread: each side keeps the TIDs it has (TIDs differ between runs)
    got = rows("--thread", "10", "--thread", "20")
    assert got["parse (app.py)"]["self_pct_a"] == 80 and got["render (app.py)"]["self_pct_b"] == 80
    assert "idle_loop (app.py)" not in got
    # --threads roots stacks at threads matched by name
    got = rows("--threads", "--idle")
    assert got["thread worker"]["total_pct_a"] == got["thread worker"]["total_pct_b"] == 50
    assert got["thread MainThread"]["total_diff_pp"] == 0
    # the window, in seconds from each recording's start
    assert (
        json.loads(ok(flamekit("diff", str(a), str(b), "--to", "json", "--until", "0.05")))["a"][
            "selected"
        ]
        == 49 + 25
    )


def test_filters_that_leave_a_side_empty_say_which(tmp_path: Path):
    a = _two_threads(tmp_path / "a.fkt", (10, 11), "parse")
    b = _two_threads(tmp_path / "b.fkt", (20, 21), "render")
    (line,) = error_lines(flamekit("diff", str(a), str(b), "--thread", "10"))
    assert "no thread with TID 10" in line and str(b) in line and "20 (MainThread)" in line
    # nothing selected is a result: each empty side said, exit 0, nothing else written
    r = flamekit("diff", str(a), str(b), "--from", "100")
    assert r.returncode == 0 and r.stderr == b""
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2 and str(a) in lines[0] and str(b) in lines[1]
    assert all("no samples match" in line and "nothing to compare" in line for line in lines)
    r = flamekit("diff", str(a), str(b), "--to", "svg", "--from", "100")
    assert r.returncode == 0 and r.stdout == b"" and not b.with_suffix(".diff.svg").exists()
    assert [ln.startswith(b"flamekit: warning: ") for ln in r.stderr.splitlines()] == [True] * 2
    (line,) = error_lines(flamekit("diff", str(a), str(b), "--from", "2", "--until", "1"))
    assert "later than --from" in line


# -- bad input -------------------------------------------------------------------------------

BAD = [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not a trace\n"), "not an FKT trace"),
    (lambda p: p.write_bytes(b"\x89FKT\r\n\x1a\n\x01\x00\x00\x00\xc1"), "corrupt"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "no such file"),
]


@pytest.mark.parametrize("make, words", BAD)
@pytest.mark.parametrize("side", ["a", "b"])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, make, words: str, side: str):
    good = write_trace(tmp_path / "good.fkt", {(MAIN, fr("f")): 3})
    bad = tmp_path / "bad.fkt"
    make(bad)
    args = (str(bad), str(good)) if side == "a" else (str(good), str(bad))
    for to in ("table", "difffolded", "json"):
        (line,) = error_lines(flamekit("diff", *args, "--to", to))
        assert words in line and str(bad) in line
    assert sorted(listing(tmp_path)) == sorted(["good.fkt"] + (["bad.fkt"] if bad.exists() else []))


@pytest.mark.parametrize("side", ["a", "b"])
def test_a_side_with_no_samples_is_a_result_exit_0(tmp_path: Path, side: str):
    """A trace with no samples is no bad input: diff says "no samples" for that side and
    exits 0; with nothing to compare, it writes nothing a tool would read."""
    good = write_trace(tmp_path / "good.fkt", {(MAIN, fr("f")): 3})
    empty = write_trace(tmp_path / "empty.fkt", {})
    args = (str(empty), str(good)) if side == "a" else (str(good), str(empty))
    said = f"{empty}: the trace holds no samples; nothing to compare"
    r = flamekit("diff", *args)
    assert r.returncode == 0 and r.stderr == b"" and r.stdout.decode() == said + "\n"
    for to in ("difffolded", "json", "svg"):
        r = flamekit("diff", *args, "--to", to, "-o", "-")
        assert r.returncode == 0 and r.stdout == b"", (to, r.stdout)
        assert r.stderr.decode() == f"flamekit: warning: {said}\n", to
    assert sorted(listing(tmp_path)) == ["empty.fkt", "good.fkt"]


def test_two_bad_inputs_are_one_line_each(tmp_path: Path):
    a, b = tmp_path / "a.fkt", tmp_path / "b.fkt"
    a.write_bytes(b"")
    b.write_text("nope")
    lines = error_lines(flamekit("diff", str(a), str(b)))
    assert len(lines) == 2
    assert str(a) in lines[0] and "empty" in lines[0]
    assert str(b) in lines[1] and "not an FKT trace" in lines[1]


def test_a_truncated_trace_is_compared_with_a_warning(modes: tuple[Path, Path]):
    a, b = modes
    cut = a.parent / "cut.fkt"
    data = b.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    r = flamekit("diff", str(a), str(cut))
    out = ok(r)
    stderr = r.stderr.decode()
    assert stderr.count("\n") == 1 and "warning" in stderr and "truncated" in stderr
    assert "[truncated]" in out.splitlines()[1]


def test_help_names_the_formats():
    out = ok(flamekit("diff", "--help"))
    for word in ("difffolded", "svg", "json", "--lines", "--top", "--threads", "--gil", "--until"):
        assert word in out
