"""Bounded work on any input (issue 17): output bombs are refused before they are written,
names are cut, and memory grows with the trace, not with what it multiplies into.

Each command runs in a forked child under a memory cap, a file-size cap and a timeout
(:mod:`bounded`), so that the code this guards against fails these tests in bounded time
instead of filling the disk: before the fix, the speedscope bomb below wrote until the
file cap, and the names bomb made a 2.6 GB collapsed file.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest
from bounded import peak_rss_mb, run_bounded, run_fresh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flamekit
import flamekit.commands.convert
import flamekit.commands.diff
import flamekit.commands.info
import flamekit.commands.top  # noqa: F401  (loaded before forking: children start warm)
from flamekit.analysis.budget import format_size, option_for, parse_size
from flamekit.analysis.profile import MAX_NAME
from flamekit.codeformat import format_for_version
from flamekit.convert.base import ConvertOptions, formats
from flamekit.convert.pprof import fields
from flamekit.diffing.model import build_diff
from flamekit.diffing.outputs import (
    estimate_difffolded,
    estimate_rows,
    render_difffolded,
    render_json,
    render_table,
)
from flamekit.diffing.svg import estimate as estimate_diff_svg
from flamekit.diffing.svg import render_svg
from flamekit.errors import UsageError
from flamekit.output import OutputTooLarge, write_output
from flamekit.trace import records as R
from flamekit.trace.synthetic import _code_objects, _linetable, write_synthetic
from flamekit.trace.writer import TraceWriter

DEPTH = R.MAX_STACK_DEPTH
FILE_CAP = 512 << 20


def header(**kw) -> R.Header:
    base = dict(
        flamekit_version="t",
        start_wall_ns=1_700_000_000_000_000_000,
        start_monotonic_ns=1_000_000,
        rate_hz=1000.0,
        pid=4242,
        cmdline=("python3", "x.py"),
    )
    base.update(kw)
    return R.Header(**base)


def code(ref: int, name: str = "f", filename: str = "app/x.py") -> R.Code:
    """A code record with a real line table, this interpreter's."""
    c = _code_objects()[0]
    return R.Code(
        ref, 4242, 0x1000 + ref, name, name, filename, c.co_firstlineno, _linetable(c),
        format_for_version(*sys.version_info[:2]),
    )  # fmt: skip


def deep_stack_sampled(path: Path, samples: int, threads: int = 1) -> Path:
    """One stack as deep as the format allows, sampled ``samples`` times on each of
    ``threads`` threads: a few hundred KB that multiply into gigabytes."""
    with open(path, "wb") as f:
        w = TraceWriter(f, header())
        w.write(code(1))
        for t in range(threads):
            w.write(R.Thread(t, 4242, 4242 + t, t, f"t{t}", 0))
        sid = w.stack_id(tuple((1, 2 * (i % 3)) for i in range(DEPTH)))
        t_ns = 1_000_000
        for _ in range(samples):
            t_ns += 1_000_000
            for t in range(threads):
                w.sample(t_ns, t, sid)
        w.close("duration")
    return path


def bomb(r, what: str) -> str:
    """A refusal for being over the budget: one line, exit 1, naming the size and option."""
    line = r.one_error_line()
    assert r.code == 1, (r.code, line)
    assert f"{what} output would be" in line and "--max-output" in line, line
    return line


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deep_stack_sampled(tmp_path_factory.mktemp("deep") / "deep.fkt", 20_000)


@pytest.fixture(scope="module")
def per_thread(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deep_stack_sampled(tmp_path_factory.mktemp("threads") / "t.fkt", 1, threads=1000)


# -- the format's own limits, enforced by the reader ----------------------------------------


def test_the_readers_limits_are_the_recorders_caps() -> None:
    """The reader refuses only what the recorder never writes: a chain cut at the walker's
    depth, a line table read up to the object reader's byte cap."""
    from flamekit.record.objects.reader import MAX_DATA_BYTES
    from flamekit.record.walk.common import MAX_DEPTH

    assert R.MAX_STACK_DEPTH == MAX_DEPTH
    assert R.MAX_LINETABLE == MAX_DATA_BYTES


def test_a_stack_deeper_than_the_recorder_writes_is_corrupt(tmp_path: Path) -> None:
    """The recorder cuts a chain at 65,536 frames; a deeper STACK record is not its output
    (before: read, and 524,287 frames made 10.7 GB of cpuprofile)."""
    for depth, ok in ((DEPTH, True), (DEPTH + 1, False)):
        p = tmp_path / f"d{depth}.fkt"
        with open(p, "wb") as f:
            w = TraceWriter(f, header())
            w.write(code(1))
            w.write(R.Thread(0, 4242, 1, 1, "main", 0))
            w.sample(2_000_000, 0, w.stack_id(((1, 0),) * depth))
            w.close("duration")
        r = run_bounded(["info", str(p)])
        if ok:
            assert r.code == 0, r.stderr
        else:
            line = r.one_error_line()
            assert r.code == 2 and str(p) in line and "65,537 frames" in line, line


def test_a_line_table_longer_than_the_recorder_reads_is_corrupt(tmp_path: Path) -> None:
    """The recorder reads at most 1 MiB of a line table (before: a 16 MB table was read,
    and decoded into 774 MB)."""
    for size, ok in ((R.MAX_LINETABLE, True), (R.MAX_LINETABLE + 1, False)):
        p = tmp_path / f"t{size}.fkt"
        with open(p, "wb") as f:
            w = TraceWriter(f, header())
            w.write(
                R.Code(
                    1,
                    4242,
                    1,
                    "f",
                    None,
                    "f.py",
                    1,
                    b"\x82\x00" * (size // 2) + b"\x00" * (size % 2),
                    4,
                )
            )
            w.write(R.Thread(0, 4242, 1, 1, "main", 0))
            w.sample(2_000_000, 0, w.stack_id(((1, 2),)))
            w.close("duration")
        r = run_bounded(["convert", str(p), "--to", "collapsed", "-o", "-"])
        if ok:
            assert r.code == 0, r.stderr
        else:
            line = r.one_error_line()
            assert r.code == 2 and "line table of 1,048,577 bytes" in line, line


def small_trace(path: Path, **header_fields) -> Path:
    """A trace of 200 samples of one stack, with the given header fields."""
    with open(path, "wb") as f:
        w = TraceWriter(f, header(**header_fields))
        w.write(code(1))
        w.write(R.Thread(0, 4242, 1, 1, "main", 0))
        sid = w.stack_id(((1, 0), (1, 2)))
        for k in range(1, 201):
            w.sample(1_000_000 + k * 10_000_000, 0, sid)
        w.close("duration")
    return path


@pytest.mark.parametrize(
    "field, value",
    [("rate_hz", 1e-300), ("rate_hz", 1e-11), ("start_wall_ns", (1 << 64) - 1)],
    ids=["rate-1e-300", "rate-1e-11", "wall-2**64-1"],
)
def test_header_numbers_out_of_range_are_refused_on_read(
    tmp_path: Path, field: str, value: float
) -> None:
    """Before: rate 1e-300 was an OverflowError traceback in speedscope and pprof (a period
    of infinite ns), 1e-11 one in pprof ("does not fit in 64 bits"), and a wall-clock start
    of 2**64 - 1 one in pprof with --from 1. Now every command refuses the trace in one
    line naming the field, exit 2."""
    p = str(small_trace(tmp_path / "t.fkt", **{field: value}))
    argvs = [["info", p], ["top", p], ["diff", p, p]]
    for fmt in formats():
        for window in ([], ["--from", "1"]):
            argvs.append(["convert", p, "--to", fmt, *window, "-o", str(tmp_path / "out")])
    for argv in argvs:
        r = run_bounded(argv)
        lines = r.stderr.splitlines()
        assert r.code == 2 and "Traceback" not in r.stderr, (argv, r.stderr[-2000:])
        assert len(lines) == (2 if argv[0] == "diff" else 1), (argv, lines)  # diff: per side
        assert all(f"{p}: corrupt FKT trace" in ln and field in ln for ln in lines), lines
    assert [q.name for q in tmp_path.iterdir()] == ["t.fkt"]


def test_a_window_past_every_time_is_no_overflow(tmp_path: Path) -> None:
    """``--from``/``--until`` of 1e300 s made 1e309 ns, an OverflowError traceback in every
    command. ``--until`` past the end keeps everything; ``--from`` past it, nothing."""
    p = str(small_trace(tmp_path / "t.fkt"))
    whole = run_bounded(["convert", p, "--to", "pprof", "-o", "-"])
    assert whole.code == 0, whole.stderr
    r = run_bounded(["convert", p, "--to", "pprof", "--until", "1e300", "-o", "-"])
    assert r.code == 0 and r.stdout == whole.stdout, r.stderr
    # nothing selected is a result: top says so, convert writes an empty graph and warns
    r = run_bounded(["top", "--from", "1e300", p])
    assert r.code == 0 and b"no samples match the filters" in r.stdout, r.stderr
    r = run_bounded(["convert", p, "--to", "svg", "--from", "1e300", "-o", "-"])
    assert r.code == 0 and b'data-total="0"' in r.stdout, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith("flamekit: warning: ") and "no samples match the filters" in line


# -- output bombs ---------------------------------------------------------------------------


def test_a_sample_list_bomb_is_refused_before_writing(deep: Path, tmp_path: Path) -> None:
    """20,000 samples of one 65,536-frame stack: a 100 KB trace whose speedscope would be
    2.6 GB. Refused in one line with the estimate, in a few seconds, nothing written (before:
    it wrote until the file cap)."""
    out = tmp_path / "out.json"
    r = run_bounded(["convert", str(deep), "--to", "speedscope", "-o", str(out)], timeout=60,
                    file_cap=FILE_CAP)  # fmt: skip
    line = bomb(r, "speedscope")
    assert "would be about 2.4 GiB, over the 1.0 GiB output budget" in line, line
    assert "--max-output 3G" in line, line
    assert r.seconds < 20 and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["cpuprofile", "svg", "collapsed", "speedscope", "pprof"])
def test_per_thread_copies_of_a_deep_stack_are_counted_not_made(
    per_thread: Path, fmt: str, tmp_path: Path
) -> None:
    """1,000 threads each sampled once in one 65,536-frame stack (150 KB): with --threads
    the call tree has 65 million nodes. cpuprofile and svg are refused at once; the
    formats that fit the budget are written, and none copies the stack per thread."""
    out = tmp_path / f"out.{fmt}"
    argv = ["convert", str(per_thread), "--to", fmt, "--threads", "-o", str(out)]
    r = run_bounded(argv, timeout=90, memory_mb=600, file_cap=2 << 30)
    if fmt in ("cpuprofile", "svg"):
        assert "would be at least" in bomb(r, fmt)
        assert r.seconds < 20 and not out.exists()
    else:
        assert r.code == 0, r.stderr[-2000:]
        assert out.stat().st_size < 1 << 30
    assert r.grew_mb < 400, f"{fmt}: {r.grew_mb:.0f} MB"


def test_ranking_and_diffing_per_thread_never_copy_stacks(
    per_thread: Path, synthetic: Path
) -> None:
    """``top --threads`` and ``diff --threads`` rank from each stack once (before: a copy
    of the 65,536-frame stack per thread: 490 MB more for top, 997 MB for diff, whose
    dictionaries of such keys also took 27 s)."""
    for cmd, files in (("top", 1), ("diff", 2)):
        argv = [cmd, "--threads", *[str(per_thread)] * files]
        r = run_bounded(argv, timeout=60, memory_mb=600)
        assert r.code == 0 and r.seconds < 20, (argv, r.stderr[-2000:], r.seconds)
        code, base = peak_rss_mb([cmd, "--threads", *[str(synthetic)] * files])
        code, peak = peak_rss_mb(argv)
        assert code == 0 and peak - base < 100, (argv, peak - base)


def test_diff_outputs_are_bounded_too(per_thread: Path, tmp_path: Path) -> None:
    r = run_bounded(["diff", "--threads", str(per_thread), str(per_thread), "--to", "svg",
                     "-o", str(tmp_path / "d.svg")], timeout=60)  # fmt: skip
    assert "would be at least" in r.one_error_line() and r.code == 1
    r = run_bounded(["diff", "--threads", str(per_thread), str(per_thread), "--to",
                     "difffolded", "--max-output", "100M", "-o", str(tmp_path / "d.f")])  # fmt: skip
    assert "difffolded output would be about" in r.one_error_line() and r.code == 1
    assert list(tmp_path.iterdir()) == []


def test_long_names_are_cut_in_every_output(tmp_path: Path) -> None:
    """20 functions with 1 MiB names and files, each in a 64-frame stack: before, every
    frame of every line held both (a 2.6 GB collapsed file); now a name is cut at
    MAX_NAME characters, ending in an ellipsis."""
    p = tmp_path / "names.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, header())
        for r in range(1, 21):
            w.write(
                R.Code(r, 4242, r, f"{r}" + "n" * ((1 << 20) - 8), None, "f" * (1 << 20), 1, b"", 0)
            )
        w.write(R.Thread(0, 4242, 1, 1, "t" * (1 << 20), 0))
        for r in range(1, 21):
            w.sample(1_000_000 * r, 0, w.stack_id(tuple((r, i) for i in range(64))))
        w.close("duration")
    out = tmp_path / "out.collapsed"
    r = run_bounded(["convert", str(p), "--to", "collapsed", "--threads", "-o", str(out)],
                    file_cap=FILE_CAP)  # fmt: skip
    assert r.code == 0, r.stderr[-2000:]
    data = out.read_text("utf-8")
    assert len(data) < 20 * 65 * 2 * MAX_NAME + 10_000
    labels = [label for line in data.splitlines() for label in line.rsplit(" ", 1)[0].split(";")]
    assert len(labels) == 20 * 65
    assert all(len(label) <= 2 * MAX_NAME + 20 and "\u2026" in label for label in labels)
    rec = flamekit.open(p)
    frame = rec.stack(1)[0]
    assert len(frame.name) == MAX_NAME and frame.name.endswith("\u2026")
    assert frame.name.startswith("1nnn") and len(frame.file) == MAX_NAME


# -- the budget option ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("syn") / "run.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=3000, stacks=60, threads=3)
    return p


def test_max_output_refuses_lowers_and_lifts_the_budget(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    size = len(flamekit.open(synthetic).profile().to_bytes("svg"))
    r = run_bounded(
        ["convert", str(synthetic), "--to", "svg", "--max-output", "4K", "-o", str(out)]
    )
    line = bomb(r, "svg")
    assert "over the 4.0 KiB output budget" in line and not out.exists()
    k = int(line.split("--max-output ")[1].split("K")[0])
    assert size <= k << 10 <= 3 * size, (size, k)  # the option given lets it through
    r = run_bounded(
        ["convert", str(synthetic), "--to", "svg", "--max-output", f"{k}K", "-o", str(out)]
    )
    assert r.code == 0 and out.stat().st_size == size, r.stderr
    r = run_bounded(["diff", str(synthetic), str(synthetic), "--max-output", "0"])
    assert r.code == 0, r.stderr
    r = run_bounded(["convert", str(synthetic), "--to", "svg", "--max-output", "lots"])
    assert r.code == 2 and "not a size" in r.one_error_line()


def test_sizes_parse_and_print() -> None:
    assert parse_size("0") is None
    assert parse_size("512") == 512
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("2GiB") == 2 << 30 and parse_size("2GB") == 2_000_000_000
    assert parse_size(" 10 k ") == 10240
    for bad in ("", "G", "-1", "1e9", "3Q"):
        with pytest.raises(UsageError):
            parse_size(bad)
    assert format_size(3 << 29) == "1.5 GiB" and format_size(999) == "999 bytes"
    assert option_for((1 << 30) + 1) == "2G" and option_for(1 << 20) == "1M"


def test_the_writer_stops_at_the_budget_whatever_the_estimate(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"previous")
    with pytest.raises(OutputTooLarge, match="passed its 100-byte budget"):
        write_output(str(target), iter([b"x" * 60, b"y" * 60]), max_output=100)
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["out"]
    assert write_output(str(target), [b"x" * 100], max_output=100) == 100


# -- estimates are upper bounds ---------------------------------------------------------------

names = st.text(
    st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40
) | st.sampled_from(["a;b\nc", "<x y='1'>&", "\x1b]0;t\x07", "\U0001f525" * 5, "n" * 1500])


@st.composite
def traces(draw, tmp: Path) -> Path:
    ncodes = draw(st.integers(1, 6))
    nthreads = draw(st.integers(1, 4))
    path = tmp / f"t{draw(st.integers(0, 1 << 30))}.fkt"
    with open(path, "wb") as f:
        w = TraceWriter(
            f, header(rate_hz=draw(st.sampled_from([0.0, 1.0, 100.0, 1000.0, 99_999.0])))
        )
        for r in range(1, ncodes + 1):
            c = _code_objects()[r % 5]
            w.write(R.Code(r, 4242, r, draw(names), draw(st.none() | names), draw(names),
                           c.co_firstlineno, _linetable(c),
                           format_for_version(*sys.version_info[:2])))  # fmt: skip
        for t in range(nthreads):
            w.write(
                R.Thread(
                    t, 4242, draw(st.none() | st.integers(1, 99)), None, draw(st.none() | names), 0
                )
            )
        frame = st.tuples(st.integers(1, ncodes), st.integers(-1, 60).map(lambda o: o * 2))
        shapes = draw(
            st.lists(
                st.lists(frame, min_size=0, max_size=300 if draw(st.booleans()) else 8).map(tuple),
                min_size=1,
                max_size=8,
            )
        )
        t_ns = 1_000_000
        for _ in range(draw(st.integers(1, 300))):
            t_ns += draw(st.sampled_from([0, 1, 999, 1_000_000, 10**9]))
            w.sample(t_ns, draw(st.integers(0, nthreads - 1)), w.stack_id(draw(st.sampled_from(shapes))),
                     gil=draw(st.booleans()), idle=draw(st.booleans()))  # fmt: skip
        w.close("duration")
    return path


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_estimate_is_at_least_the_output(tmp_path: Path, data) -> None:
    path = data.draw(traces(tmp_path))
    rec = flamekit.open(path)
    threads, lines, idle = (
        data.draw(st.booleans()),
        data.draw(st.booleans()),
        data.draw(st.booleans()),
    )
    prof = rec.profile(per_thread=threads, idle=idle)  # an empty one too: its file is made
    opts = ConvertOptions(lines=lines)
    for name, fmt in formats().items():
        made = (b"".join(fields(prof.selection, opts)) if name == "pprof"
                else prof.to_bytes(name, lines=lines, max_output=None))  # fmt: skip
        # the exact estimate (no budget), and the ceiling a large budget is met with
        for budget in (None, 1 << 60):
            est = fmt.estimate(prof.selection, opts, budget)
            assert est.size >= len(made) and not est.at_least, (name, budget, est.size, len(made))
        if name == "pprof":
            assert gzip.decompress(prof.to_bytes(name, lines=lines)) == made
    diff = build_diff(prof.selection, prof.selection, lines=lines)
    rows = diff.rows()
    for est, made in (
        (
            estimate_rows(diff, rows, False),
            render_table(diff, rows).encode("utf-8", "backslashreplace"),
        ),
        (estimate_rows(diff, rows, True), render_json(diff, rows)),
        (estimate_difffolded(diff), b"".join(render_difffolded(diff))),
        (estimate_diff_svg(diff, None), b"".join(render_svg(diff))),
    ):
        assert est.size >= len(made), (est.size, len(made))


# -- memory grows with the trace ---------------------------------------------------------------


def realistic_samples(path: Path, mb: int) -> Path:
    """Samples as a recorder writes them (dt about 1 ms, 4 threads, 1,000 stacks): about
    6 bytes each."""
    import random

    rng = random.Random(0)
    with open(path, "wb") as f:
        w = TraceWriter(f, header())
        w.write(code(1))
        for t in range(4):
            w.write(R.Thread(t, 4242, 4242 + t, t, f"t{t}", 0))
        sids = [w.stack_id(((1, 2 * (i % 50)), (1, 2 * (i // 50)))) for i in range(1000)]
        t_ns = 1_000_000
        for i in range((mb << 20) // 6):
            t_ns += 1_000_000 + rng.randint(-20000, 20000)
            w.sample(t_ns, i % 4, sids[rng.randrange(1000)])
        w.close("duration")
    return path


def distinct_deep_stacks(path: Path, mb: int) -> Path:
    """Stacks of 65,536 frames, every frame a distinct (code, offset) pair."""
    with open(path, "wb") as f:
        w = TraceWriter(f, header())
        w.write(code(1))
        w.write(R.Thread(0, 4242, 1, 1, "main", 0))
        sid = 0
        while f.tell() < mb << 20:
            sid += 1
            w.stack_id(tuple((1, (sid * DEPTH + i) % 30000) for i in range(DEPTH)))
        for s in range(1, sid + 1):
            w.sample(1_000_000 * s, 0, s)
        w.close("duration")
    return path


@pytest.mark.parametrize("shape", [realistic_samples, distinct_deep_stacks])
def test_memory_per_byte_of_trace_is_bounded(shape, tmp_path: Path, synthetic: Path) -> None:
    """``info`` and ``top`` on an 8 MB trace take at most 8 bytes of memory per byte of
    trace above what they take for a tiny one (formats/fkt.md states the bound for every
    command). Before: 15 per byte for samples (a Python int per sample's time, 40 bytes),
    26 for deep stacks (a tuple per frame, 90 bytes)."""
    p = shape(tmp_path / "t.fkt", 8)
    mb = p.stat().st_size / (1 << 20)
    for cmd in ("info", "top"):
        code, base = peak_rss_mb([cmd, str(synthetic)])
        assert code == 0
        code, peak = peak_rss_mb([cmd, str(p)])
        assert code == 0
        assert peak - base <= 8 * mb, f"{cmd}: {peak - base:.0f} MB more for {mb:.1f} MB"


def test_running_out_of_memory_is_one_line(tmp_path: Path, synthetic: Path) -> None:
    """Under a memory cap too small for the trace, every command says so in one line and
    exits 1, leaving no file (before: a MemoryError traceback)."""
    cap = next(
        mb for mb in range(60, 400, 20) if run_fresh(["top", str(synthetic)], memory_mb=mb)[0] == 0
    )
    p = realistic_samples(tmp_path / "t.fkt", 16)
    out = tmp_path / "out.json"
    for argv in (["top", str(p)], ["convert", str(p), "--to", "speedscope", "-o", str(out)],
                 ["diff", str(p), str(p)], ["info", "--json", str(p)]):  # fmt: skip
        code, err, _ = run_fresh(argv, memory_mb=cap + 10)
        assert code == 1 and err.count("\n") == 1, (argv, cap, err[-3000:])
        assert err.startswith("flamekit: error: out of memory"), err
    assert [q.name for q in tmp_path.iterdir()] == ["t.fkt"]
