"""A fuzz run over traces that are valid but extreme (issue 17).

Every limit formats/fkt.md states, at its edge: stacks 65,536 frames deep, sampled many
times; names of 1 MiB and of every awkward kind (separators, markup, terminal escapes,
non-BMP); rates from the least the format allows to the largest float; wall clocks at
both ends of their range and a monotonic origin at 2^64 - 1; sample times and END's
duration up to 2^62 ns; thread, code refs, offsets and first lines at their caps.

Every command runs in a bounded child (:mod:`bounded`) and either finishes within its
stated time and memory (formats/fkt.md, "What reading costs"), its output read back by
the format's reader with every selected sample in it, or refuses in one line: an output
over its budget (exit 1) or a window that selects nothing (exit 2). Never a traceback.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest
from bounded import Ran, run_bounded
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from readers import decode

import flamekit
import flamekit.commands.convert
import flamekit.commands.diff
import flamekit.commands.info
import flamekit.commands.top  # noqa: F401  (loaded before forking: children start warm)
from flamekit.analysis.profile import MAX_NAME
from flamekit.codeformat import format_for_version
from flamekit.trace import records as R
from flamekit.trace.synthetic import _code_objects, _linetable
from flamekit.trace.writer import TraceWriter

DEPTH = R.MAX_STACK_DEPTH
#: The output budget of every command here: low, so that extreme traces meet it often
#: (refused in one line) and outputs stay small enough to read back.
BUDGET = "16M"
TIMEOUT_S = 60.0
#: Memory a command may take, beyond what the forked child started with: the stated
#: bound (25 bytes per byte of trace, about 20 MB for the interpreter), a call tree's
#: twice the output's size for the formats that hold one, and slack for a loaded machine.
BASE_MB = 64
PER_TRACE_BYTE = 25
PER_OUTPUT_BYTE = 2

NAMES = st.sampled_from(
    [
        "",
        "<module>",
        "a;b\nc\r\x00 d",
        "<x y='1'>&\"",
        "\x1b]0;title\x07\x1b[2J",
        "\U0001f525" * 400,
        "n" * (MAX_NAME + 1),
        "m" * ((1 << 20) - 1),  # the longest string the reader takes
    ]
)
RATES = st.sampled_from([0.0, R.MIN_RATE_HZ, 0.37, 1000.0, 1e9, sys.float_info.max])
WALLS = st.sampled_from([-R.MAX_TIME_NS, 0, 1_700_000_000 * 10**9, R.MAX_TIME_NS])
OFFSETS = st.sampled_from([-(1 << 31), -1, 0, 2, 40, 1 << 31])


@st.composite
def extreme_trace(draw: st.DrawFn, path: Path) -> Path:
    origin = draw(st.sampled_from([0, (1 << 64) - 1]))
    header = R.Header(
        "t",
        draw(WALLS),
        origin,
        draw(RATES),
        draw(st.sampled_from([1, (1 << 64) - 1])),
        tuple(draw(st.lists(NAMES, max_size=2))),
    )
    real = _code_objects()[0]
    tables = [(_linetable(real), format_for_version(*sys.version_info[:2])), (b"", 0),
              (b"\xff" * 40, 4)]  # fmt: skip
    refs = draw(st.lists(st.sampled_from([0, 1, 7, 1 << 40]), min_size=1, max_size=3, unique=True))
    threads = draw(st.lists(st.sampled_from([0, 1, 1 << 30]), min_size=1, max_size=3, unique=True))
    with open(path, "wb") as f:
        w = TraceWriter(f, header)
        for ref in refs:
            table, fmt = draw(st.sampled_from(tables))
            first = draw(st.sampled_from([-(1 << 31), 1, 1 << 31]))
            w.write(R.Code(ref, 1, ref, draw(NAMES), draw(st.none() | NAMES), draw(NAMES),
                           first, table, fmt))  # fmt: skip
        for ref in threads:
            tid = draw(st.sampled_from([None, 0, 4242, (1 << 64) - 1]))
            w.write(R.Thread(ref, 1, tid, draw(st.none() | st.just((1 << 64) - 1)),
                             draw(st.none() | NAMES), draw(st.sampled_from([0, R.MAX_TIME_NS - 1]))))  # fmt: skip
        frame = st.tuples(st.sampled_from(refs), OFFSETS)
        shapes = []
        for depth in draw(st.lists(st.sampled_from([0, 1, 3, 300, DEPTH - 1, DEPTH]), min_size=1,
                                   max_size=3)):  # fmt: skip
            top = draw(st.lists(frame, min_size=min(depth, 1), max_size=min(depth, 3)))
            # a deep stack repeats a few frames (a recursion) or walks distinct offsets
            if draw(st.booleans()):
                shapes.append(tuple(top[i % len(top)] for i in range(depth)) if top else ())
            else:
                shapes.append(tuple((refs[0], 2 * (i % 30000)) for i in range(depth)))
        count = draw(st.sampled_from([1, 2, 700]))
        # times from the origin, or from as late as the format allows
        t = origin + draw(st.sampled_from([0, R.MAX_TIME_NS - (1 << 41)]))
        dts = st.sampled_from([0, 1, 999, 10**9])
        for _ in range(count):
            t += draw(dts)
            w.sample(t, draw(st.sampled_from(threads)), w.stack_id(draw(st.sampled_from(shapes))),
                     gil=draw(st.booleans()), idle=draw(st.booleans()))  # fmt: skip
        last = draw(st.sampled_from([None, origin + R.MAX_TIME_NS - 1]))
        w.close("duration", end_ns=last)
    return path


#: format -> (a reader of its bytes giving the samples it holds)
READERS = {
    "collapsed": lambda data: decode.collapsed(data).total,
    "speedscope": lambda data: decode.speedscope(data)[0].total,
    "cpuprofile": lambda data: decode.cpuprofile(data).total,
    "svg": lambda data: decode.svg(data).total,
    "pprof": lambda data: decode.pprof(gzip.decompress(data))[0].total,
}


def selected(path: Path, extra: list[str]) -> int:
    """How many samples the filters in ``extra`` select, through the Python API."""
    rec = flamekit.open(path)
    opts = {k: v for k, v in zip(extra, extra[1:]) if k in ("--from", "--until")}
    prof = rec.profile(
        idle="--idle" in extra,
        start=float(opts["--from"]) if "--from" in opts else None,
        end=float(opts["--until"]) if "--until" in opts else None,
    )
    return len(prof.selection)


def check(r: Ran, trace_mb: float, out: Path | None, empty: bool = False) -> str:
    """A bounded run finished or refused in one line (``diff``: one per side): "" when it
    finished, else its last line. ``empty``: nothing was selected, which a command that
    finished says in one warning line (``diff``: one per side), naming no samples."""
    where = f"flamekit {' '.join(r.argv)}: exit {r.code} in {r.seconds:.1f} s"
    assert "Traceback" not in r.stderr, f"{where}\n{r.stderr[-3000:]}"
    out_mb = out.stat().st_size / (1 << 20) if out is not None and out.exists() else 0.0
    allowed = BASE_MB + PER_TRACE_BYTE * trace_mb + PER_OUTPUT_BYTE * out_mb
    assert r.grew_mb <= allowed, f"{where}: {r.grew_mb:.0f} MB, over {allowed:.0f}"
    if r.code == 0:
        warned = r.stderr.splitlines()
        if not empty:
            assert not warned, f"{where}\n{r.stderr[-3000:]}"
        elif r.argv[0] == "convert" or r.argv[r.argv.index("--to") + 1] != "table":
            sides = 2 if r.argv[0] == "diff" else 1
            assert len(warned) == sides, f"{where}\n{r.stderr[-3000:]}"
            assert all(ln.startswith("flamekit: warning: ") and NO_SAMPLES in ln
                       for ln in warned), f"{where}\n{r.stderr[-3000:]}"  # fmt: skip
        return ""
    lines = r.stderr.splitlines()
    assert 1 <= len(lines) <= (2 if r.argv[0] == "diff" else 1), f"{where}\n{r.stderr[-3000:]}"
    assert all(ln.startswith("flamekit: error: ") for ln in lines), f"{where}\n{r.stderr[:3000]}"
    assert r.code in (1, 2), f"{where}: {lines[-1][:500]}"
    assert out is None or not out.exists(), where
    return lines[-1]


def over_budget(line: str) -> bool:
    return "output budget" in line and "--max-output" in line


#: What every command says of an empty selection, an empty trace's or the filters'.
NO_SAMPLES = "no samples"


@settings(
    max_examples=12,
    deadline=None,
    # an example runs 14 commands, some for seconds: shrinking one took over 5 minutes,
    # and the failing example's draws are printed anyway. 25 examples took 60-112 s, the
    # suite's longest test; each draws from a handful of extremes per dimension, so 12
    # still meet each of them
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
def test_every_command_on_an_extreme_valid_trace_finishes_or_refuses_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    d = tmp_path_factory.mktemp("extreme")
    path = data.draw(extreme_trace(d / "x.fkt"))
    trace_mb = path.stat().st_size / (1 << 20)
    event(f"trace of {'under 1' if trace_mb < 1 else 'over 1'} MiB")
    extra = data.draw(st.sampled_from([[], ["--idle"], ["--from", "1"], ["--until", "1e300"],
                                       ["--idle", "--from", "1e300"]]))  # fmt: skip
    per_thread = data.draw(st.sampled_from([[], ["--threads"]]))
    lines = data.draw(st.booleans())  # frames per line (convert's default) or per function
    want = selected(path, extra)
    p = str(path)
    for argv in (["info", p], ["info", "--json", p]):
        assert check(run_bounded(argv, timeout=TIMEOUT_S), trace_mb, None) == ""
    # nothing selected is a result: "no samples" in the output, exit 0
    top = run_bounded(["top", "-n", "0", *per_thread, *extra, p])
    assert check(top, trace_mb, None) == ""
    assert (NO_SAMPLES.encode() in top.stdout) == (want == 0), top.stdout[:3000]
    for fmt, read in READERS.items():
        out = d / f"out.{fmt}"
        argv = ["convert", p, "--to", fmt, "--max-output", BUDGET, *per_thread, *extra,
                "--lines" if lines else "--no-lines", "-o", str(out)]  # fmt: skip
        line = check(run_bounded(argv, timeout=TIMEOUT_S), trace_mb, out, want == 0)
        event(f"convert: {'written' if not line else 'refused: ' + line.split(':')[2][:25]}")
        if not line:
            assert read(out.read_bytes()) == want, (argv, want)  # an empty one too
            out.unlink()
        else:
            assert over_budget(line), line
    for to in ("table", "json", "difffolded", "svg"):
        out = d / f"diff.{to}"
        argv = ["diff", p, p, "--to", to, "--max-output", BUDGET, *per_thread, *extra,
                *(["--lines"] if lines else []), "-o", str(out)]  # fmt: skip
        line = check(run_bounded(argv, timeout=TIMEOUT_S), 2 * trace_mb, out, want == 0)
        if want == 0:  # nothing to compare: the table says so; nothing for the tools
            assert line == "" and out.exists() == (to == "table"), (to, line)
            if to == "table":
                assert out.read_text().count(NO_SAMPLES) == 2
                out.unlink()
        elif not line:
            assert out.stat().st_size > 0
            out.unlink()
        else:
            assert over_budget(line), line
