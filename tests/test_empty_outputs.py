"""An empty recording is a result: every format's empty file opens in its real reader.

A ``--gil`` recording of a program that only sleeps holds no samples, and so does any
trace once the filters keep none (a window past its end). ``convert`` writes a valid
empty file of the asked format, exits 0 and warns in one line; ``top`` and ``diff`` say
"no samples" and exit 0. Each empty output is opened with the tool people open it with
(flamegraph.pl, speedscope's schema and app, DevTools' engine, ``go tool pprof``, a
browser for the SVG), and hypothesis checks the converters on random traces whose
selection is empty.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import decode, harness, profile_pb
from test_bounded_work import traces
from test_convert_collapsed import find_flamegraph
from test_convert_pprof import go_top
from test_convert_svg import FRAMES_JS, open_svg

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats
from flamekit.trace import load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "formats" / "examples" / "synthetic-small.fkt"
SLEEPER = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"


def flamekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flamekit", *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def gil_of_a_sleeper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``record --gil`` of a program that only sleeps: no thread ever holds the
    GIL, so the trace holds no samples (attached: a launch samples the start-up)."""
    out = tmp_path_factory.mktemp("empty") / "sleeper.fkt"
    target = subprocess.Popen([sys.executable, "-c", SLEEPER], stdout=subprocess.PIPE)
    try:
        assert target.stdout is not None and target.stdout.readline() == b"ready\n"
        r = flamekit("record", "-q", "--gil", "-d", "0.5", "-o", str(out), "-p", str(target.pid))
    finally:
        target.kill()
        target.wait()
    assert r.returncode == 0, r.stderr
    assert "0 samples" in r.stderr and len(load(out)) == 0, r.stderr
    return out


#: The two ways to have nothing: a trace with no samples, or filters that keep none.
CASES = {
    "no-samples": ([], "the trace holds no samples"),
    "nothing-selected": (["--from", "1000"], "no samples match the filters ("),
}


@pytest.fixture(params=list(CASES))
def empty_case(request: pytest.FixtureRequest, gil_of_a_sleeper: Path) -> tuple[Path, list[str]]:
    """(trace, extra options) for an empty selection, after checking what it says."""
    extra, _ = CASES[request.param]
    return (gil_of_a_sleeper if not extra else EXAMPLE), extra


def convert(trace: Path, extra: list[str], fmt: str, out: Path) -> bytes:
    """``convert`` of an empty selection: exit 0, one warning line saying why, the file."""
    r = flamekit("convert", str(trace), "--to", fmt, *extra, "-o", str(out))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    (line,) = r.stderr.splitlines()
    why = next(w for e, w in CASES.values() if e == extra)
    assert line.startswith(f"flamekit: warning: {trace}: {why}"), line
    assert line.endswith(f"; wrote an empty {fmt} output"), line
    return out.read_bytes()


def test_collapsed_is_empty_and_flamegraph_pl_finds_no_stacks(
    empty_case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """Zero lines, as py-spy writes. flamegraph.pl reads it and finds no stack (it refuses
    to draw nothing: "No stack counts found", exit 2), with no line it could not parse."""
    out = tmp_path / "e.collapsed"
    assert convert(*empty_case, "collapsed", out) == b""
    flamegraph_pl = find_flamegraph()
    if flamegraph_pl is None or shutil.which("perl") is None:
        harness.missing("flamegraph.pl (tests/readers/install.sh)")
    r = subprocess.run(["perl", str(flamegraph_pl), str(out)], capture_output=True, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 2 and err == "ERROR: No stack counts found\n", err


def test_speedscope_schema_and_app_accept_the_empty_profile(
    empty_case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "e.speedscope.json"
    doc = json.loads(convert(*empty_case, "speedscope", out))
    jsonschema.validate(doc, harness.speedscope_schema())
    assert doc["profiles"] == [] and doc["shared"]["frames"] == []
    shown = harness.open_in_speedscope(out, timeout_ms=5000)
    log = shown["log"]
    assert not log["pageErrors"] and not log["console"], log
    # the app's own word for a file it imported and found empty (a broken one: "Unrecognized")
    assert log["dialogs"] == [
        {"type": "alert", "message": "Successfully imported profile, but it's empty!"}
    ], log


def test_devtools_and_speedscope_read_the_empty_cpuprofile(
    empty_case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "e.cpuprofile"
    convert(*empty_case, "cpuprofile", out)
    harness.npm_package("@paulirish/trace_engine")
    seen = harness.run_node("devtools_cpuprofile.mjs", str(out))
    assert seen["errors"] == [] and seen["threads"] == 1, seen
    assert seen["samples"] == 0 and seen["rootName"] == "(root)" and seen["roots"] == []
    shown = harness.open_in_speedscope(out)
    log = shown["log"]
    assert not log["pageErrors"] and not log["console"] and not log["dialogs"], log
    assert shown["title"] == "e.cpuprofile - speedscope"


def test_go_pprof_reads_the_empty_profile(
    empty_case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "e.pb.gz"
    convert(*empty_case, "pprof", out)
    text, rows = go_top(out, "-symbolize=none")
    assert rows == [] and "of 0 total" in text, text


def test_the_empty_svg_opens_in_a_browser(
    empty_case: tuple[Path, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "e.svg"
    ET.fromstring(convert(*empty_case, "svg", out))
    b = open_svg(out, answer="x")
    frames = b.call("eval", expr=FRAMES_JS)
    assert [f["title"] for f in frames] == ["all (0 samples, 0.00%)"]
    b.call("click", selector="#search")  # shares of nothing: no division by zero shows
    assert b.call("eval", expr="document.getElementById('matched').textContent") == "No match"
    log = b.call("log")
    assert log["pageErrors"] == [] and log["console"] == [], log


def test_top_says_no_samples_and_exits_0(empty_case: tuple[Path, list[str]]) -> None:
    trace, extra = empty_case
    r = flamekit("top", str(trace), *extra)
    why = next(w for e, w in CASES.values() if e == extra)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"{trace}: {why}") and r.stdout.count("\n") == 1, r.stdout


def test_diff_says_no_samples_and_exits_0(empty_case: tuple[Path, list[str]]) -> None:
    trace, extra = empty_case
    r = flamekit("diff", str(trace), str(EXAMPLE), *extra)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == (1 if not extra else 2), lines  # the window empties both sides
    assert lines[0].startswith(f"{trace}: ") and "no samples" in lines[0], lines
    assert all(ln.endswith("; nothing to compare") for ln in lines), lines


def test_info_reads_the_empty_recording(gil_of_a_sleeper: Path) -> None:
    r = flamekit("info", "--json", str(gil_of_a_sleeper))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    s = json.loads(r.stdout)
    assert s["samples"] == 0 and s["mode"]["gil_only"] is True and s["complete"] is True


# -- every converter on random empty selections ---------------------------------------------


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_every_converter_makes_a_valid_empty_output(tmp_path: Path, data: st.DataObject) -> None:
    """Whatever the trace (names, threads, rates) and the other filters, a selection of
    nothing converts to a file each format's reader takes, showing no sample."""
    prof = build_profile(load(data.draw(traces(tmp_path))))
    after_end = prof.trace.duration_ns / 1e9 + data.draw(st.floats(1, 1e9))
    options = FilterOptions(threads=data.draw(st.booleans()), idle=data.draw(st.booleans()),
                            gil=data.draw(st.booleans()), start_s=after_end)  # fmt: skip
    sel = select(prof, options)
    assert len(sel) == 0
    opts = ConvertOptions(lines=data.draw(st.booleans()))
    out = {name: b"".join(fmt.convert(sel, opts)) for name, fmt in formats().items()}
    for name, fmt in formats().items():  # the estimate holds for nothing too
        assert fmt.estimate(sel, opts, None).size >= len(out[name]), name
    assert out["collapsed"] == b""
    doc = json.loads(out["speedscope"])
    jsonschema.validate(doc, harness.speedscope_schema())
    assert decode.speedscope(out["speedscope"])[0].total == 0 and doc["profiles"] == []
    assert decode.cpuprofile(out["cpuprofile"]).total == 0
    assert json.loads(out["cpuprofile"])["samples"] == []
    assert decode.svg(out["svg"]).total == 0
    counts, msg = decode.pprof(gzip.decompress(out["pprof"]))
    assert counts.total == 0 and msg.string_table[0] == "" and not msg.sample
    profile_pb.parse(gzip.decompress(out["pprof"]))
