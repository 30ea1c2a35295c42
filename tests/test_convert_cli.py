"""`flamekit convert` and `flamekit top` from the outside: paths, filters, bad input.

Every failure is one line on stderr with the documented exit code, never a traceback, and
never leaves an output file (or a temporary one) behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flamekit.errors import OutputError
from flamekit.output import default_output_path, write_output
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "formats" / "examples"


def flamekit(*args: str, cwd: Path | None = None, umask: int | None = None):
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args],
        capture_output=True,
        cwd=cwd,
        timeout=120,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def err(r: subprocess.CompletedProcess) -> str:
    text = r.stderr.decode()
    assert "Traceback" not in text, text
    return text


def counts(folded: bytes) -> int:
    return sum(int(line.rsplit(b" ", 1)[1]) for line in folded.splitlines())


@pytest.fixture(scope="module")
def run_fkt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("convert") / "run.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=3000, stacks=60, threads=3, rate_hz=100.0)
    return p


@pytest.fixture
def trace_copy(run_fkt: Path, tmp_path: Path) -> Path:
    p = tmp_path / "run.fkt"
    p.write_bytes(run_fkt.read_bytes())
    return p


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "run.fkt")


# -- the happy paths ---------------------------------------------------------------------


def test_default_output_is_the_input_with_the_format_extension(trace_copy: Path):
    r = flamekit("convert", str(trace_copy), "--to", "collapsed")
    assert r.returncode == 0, err(r)
    out = trace_copy.with_suffix(".collapsed")
    assert leftovers(trace_copy.parent) == ["run.collapsed"]
    trace = load(trace_copy)
    assert counts(out.read_bytes()) == sum(1 for f in trace.columns.flags if not f & 1)
    assert r.stdout == b""


def test_dash_writes_to_stdout_the_same_bytes(trace_copy: Path):
    a = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", "-")
    b = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", str(trace_copy) + ".txt")
    assert a.returncode == b.returncode == 0, err(a) + err(b)
    assert a.stdout == Path(str(trace_copy) + ".txt").read_bytes()
    assert a.stdout and err(a) == ""


def test_the_final_file_gets_the_users_umask(trace_copy: Path):
    out = trace_copy.parent / "x.collapsed"
    r = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", str(out), umask=0o027)
    assert r.returncode == 0, err(r)
    assert out.stat().st_mode & 0o777 == 0o640


def test_replacing_an_existing_output(trace_copy: Path):
    out = trace_copy.parent / "old.collapsed"
    out.write_text("stale\n")
    r = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", str(out))
    assert r.returncode == 0 and b"stale" not in out.read_bytes()


def test_filters_and_lines_options_reach_the_output(trace_copy: Path):
    def run(*opts: str) -> bytes:
        r = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", "-", *opts)
        assert r.returncode == 0, err(r)
        return r.stdout

    trace = load(trace_copy)
    n = len(trace)
    assert counts(run("--idle")) == n
    assert counts(run("--gil", "--idle")) == sum(1 for f in trace.columns.flags if f & 2)
    threaded = run("--threads")
    assert all(line.startswith(b"thread ") for line in threaded.splitlines())
    assert b"thread worker-1 (4243);" in threaded
    assert counts(threaded) == counts(run())
    only = run("--thread", "4243", "--threads")
    assert only and all(line.startswith(b"thread worker-1 (4243);") for line in only.splitlines())
    mid = trace.times[len(trace) // 2] / 1e9
    first, second = run("--until", str(mid), "--idle"), run("--from", str(mid), "--idle")
    assert counts(first) + counts(second) == n
    assert 0 < counts(first) < n
    for line in run("--no-lines").splitlines():
        assert all(frame.endswith(b".py)") for frame in line.rsplit(b" ", 1)[0].split(b";"))


def test_truncated_trace_converts_what_it_holds_with_a_warning(trace_copy: Path):
    data = trace_copy.read_bytes()
    cut = trace_copy.parent / "cut.fkt"
    cut.write_bytes(data[: len(data) * 2 // 3])
    r = flamekit("convert", str(cut), "--to", "collapsed", "-o", "-", "--idle")
    assert r.returncode == 0
    stderr = err(r)
    assert stderr.count("\n") == 1 and "warning" in stderr and "truncated" in stderr
    held = len(load(cut))
    assert 0 < held < 3000 and counts(r.stdout) == held


def test_every_example_trace_converts(tmp_path: Path):
    manifest = json.loads((EXAMPLES / "manifest.json").read_text())
    for name, facts in manifest.items():
        r = flamekit("convert", str(EXAMPLES / name), "--to", "collapsed", "-o", "-", "--idle")
        if facts.get("samples", 1) == 0:
            assert r.returncode == 2 and err(r).count("\n") == 1, name
            continue
        assert r.returncode == 0, (name, err(r))
        assert counts(r.stdout) == facts.get("samples", counts(r.stdout)), name


# -- bad input ---------------------------------------------------------------------------


def one_error_line(r: subprocess.CompletedProcess, code: int) -> str:
    text = err(r)
    assert r.returncode == code, text
    assert text.count("\n") == 1 and text.startswith("flamekit: error: "), text
    return text


def test_unknown_format_lists_the_valid_ones(trace_copy: Path):
    r = flamekit("convert", str(trace_copy), "--to", "png")
    text = one_error_line(r, 2)
    assert "'png'" in text and "collapsed" in text
    assert leftovers(trace_copy.parent) == []


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, not a trace\n"), "not an FKT trace"),
        (lambda p: p.write_bytes(b"\x89FKT\r\n\x1a\n\x01\x00\x00\x00\xc1"), "corrupt"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "no such file"),
    ],
)
@pytest.mark.parametrize("cmd", ["convert", "top"])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path: Path, make, words, cmd):
    p = tmp_path / "bad.fkt"
    make(p)
    args = [cmd, str(p)] + (["--to", "collapsed"] if cmd == "convert" else [])
    r = flamekit(*args)
    assert words in one_error_line(r, 2)
    assert r.stdout == b""
    assert sorted(x.name for x in tmp_path.iterdir()) == (["bad.fkt"] if p.exists() else [])


def test_a_missing_input_with_an_existing_output_is_one_line(tmp_path: Path):
    """The check that the output is not the input must not trip over an input that is
    not there (it raised FileNotFoundError, a traceback)."""
    out = tmp_path / "old.svg"
    out.write_text("old")
    r = flamekit("convert", str(tmp_path / "missing.fkt"), "--to", "svg", "-o", str(out))
    assert "no such file" in one_error_line(r, 2)
    assert out.read_text() == "old"


@pytest.mark.parametrize(
    "target, words",
    [
        ("missing-dir/out.collapsed", "directory does not exist"),
        ("afile/out.collapsed", "not a directory"),
        ("adir", "is a directory"),
    ],
)
def test_unwritable_output_is_one_line_exit_1(trace_copy: Path, target: str, words: str):
    (trace_copy.parent / "afile").write_text("x")
    (trace_copy.parent / "adir").mkdir()
    r = flamekit(
        "convert", str(trace_copy), "--to", "collapsed", "-o", str(trace_copy.parent / target)
    )
    assert words in one_error_line(r, 1)
    assert leftovers(trace_copy.parent) == ["adir", "afile"]
    assert list((trace_copy.parent / "adir").iterdir()) == []


def test_writing_over_the_input_is_refused(trace_copy: Path):
    before = trace_copy.read_bytes()
    r = flamekit("convert", str(trace_copy), "--to", "collapsed", "-o", str(trace_copy))
    assert "input" in one_error_line(r, 1)
    assert trace_copy.read_bytes() == before


@pytest.mark.parametrize(
    "opts, code, words",
    [
        (["--from", "5", "--until", "2"], 2, "later than --from"),
        (["--from", "-1"], 2, "--from"),
        (["--until", "nan"], 2, "--until"),
        (["--thread", "99999"], 2, "no thread with TID 99999"),
    ],
)
def test_bad_filters_are_one_line(trace_copy: Path, opts: list[str], code: int, words: str):
    r = flamekit("convert", str(trace_copy), "--to", "collapsed", *opts)
    assert words in one_error_line(r, code)
    assert leftovers(trace_copy.parent) == []


def test_filters_that_keep_nothing_write_an_empty_file_and_say_why(trace_copy: Path):
    """A window past the end selects nothing: a result (an empty file, exit 0), with one
    warning line that says why, as for a trace with no samples at all."""
    r = flamekit("convert", str(trace_copy), "--to", "collapsed", "--from", "100000")
    assert r.returncode == 0 and r.stdout == b""
    (line,) = r.stderr.decode().splitlines()
    assert line.startswith(f"flamekit: warning: {trace_copy}: no samples match the filters (")
    assert line.endswith("; wrote an empty collapsed output")
    assert leftovers(trace_copy.parent) == ["run.collapsed"]
    assert (trace_copy.parent / "run.collapsed").read_bytes() == b""


def test_a_failing_converter_leaves_no_file_and_keeps_the_old_one(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"previous")

    def chunks():
        yield b"partial data"
        raise RuntimeError("converter blew up")

    with pytest.raises(RuntimeError):
        write_output(str(target), chunks())
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with pytest.raises(OutputError, match="is a directory"):
        write_output(str(tmp_path), [b"x"])


def test_default_output_paths():
    assert default_output_path("run.fkt", ".collapsed") == "run.collapsed"
    assert default_output_path("d.x/run", ".svg") == "d.x/run.svg"
    assert default_output_path("trace.bin", ".svg") == "trace.svg"


# -- top ---------------------------------------------------------------------------------


def test_top_ranks_functions_by_self_then_lines(trace_copy: Path):
    r = flamekit("top", str(trace_copy), "-n", "5")
    assert r.returncode == 0, err(r)
    lines = r.stdout.decode().splitlines()
    assert "samples selected" in lines[0] and "%Own" in lines[1]
    rows = lines[2:]
    assert len(rows) == 5
    own = [int(row.split()[2].replace(",", "")) for row in rows]
    assert own == sorted(own, reverse=True)
    assert all(row.endswith(".py)") for row in rows)
    r = flamekit("top", str(trace_copy), "--lines", "-n", "0", "--sort", "total", "--threads")
    out = r.stdout.decode().splitlines()[2:]
    total = [int(row.split()[3].replace(",", "")) for row in out]
    assert total == sorted(total, reverse=True)
    assert any(row.split("  ")[-1].startswith("thread ") for row in out)
    assert any(":" in row.rsplit("(", 1)[1] for row in out if "thread " not in row)


def test_top_self_samples_add_up_to_the_selection(trace_copy: Path):
    r = flamekit("top", str(trace_copy), "-n", "0", "--idle")
    lines = r.stdout.decode().splitlines()
    n = int(lines[0].split()[0].replace(",", ""))
    assert n == len(load(trace_copy))
    assert sum(int(row.split()[2].replace(",", "")) for row in lines[2:]) == n
