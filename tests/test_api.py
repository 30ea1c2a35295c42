"""The Python API (``flamekit.open``): what it reports is what the trace holds and what the
commands print, its outputs are ``convert``'s bytes, and its errors are flamekit's own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_filters import reference
from test_profile import Spec, random_traces

import flamekit
from flamekit.analysis.escape import printable
from flamekit.analysis.filters import FilterOptions
from flamekit.analysis.profile import THREAD, Frame
from flamekit.api import Recording, formats
from flamekit.commands.top import command as top_command
from flamekit.commands.top import render as render_top
from flamekit.errors import FlamekitError, OutputError, TraceError, UsageError
from flamekit.trace import TraceWriter, load
from flamekit.trace import records as R
from flamekit.trace.synthetic import write_synthetic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "formats" / "examples" / "synthetic-small.fkt"
TRUNCATED = ROOT / "formats" / "examples" / "synthetic-truncated.fkt"
FORMATS = ["collapsed", "speedscope", "cpuprofile", "svg", "pprof"]


def flamekit_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("api") / "run.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=3000, stacks=60, threads=3, rate_hz=100.0)
    return p


# -- rankings: the API's are top's ---------------------------------------------------------

#: One row of ``flamekit top``'s table: %Own %Total OwnSamples TotalSamples  label
TOP_ROW = re.compile(r"^ *([\d.]+)% +([\d.]+)% +([\d,]+) +([\d,]+)  (.*)$")


def top_rows(text: str) -> list[tuple[str, str, int, int, str]]:
    """top's table rows as (self %, total %, self, total, label)."""
    rows = []
    for line in text.splitlines()[2:]:
        m = TOP_ROW.match(line)
        assert m, line
        rows.append((m[1], m[2], int(m[3].replace(",", "")), int(m[4].replace(",", "")), m[5]))
    return rows


def api_rows(prof: flamekit.Profile, by: str, lines: bool) -> list[tuple[str, str, int, int, str]]:
    return [
        (
            f"{r.self_pct:.2f}",
            f"{r.total_pct:.2f}",
            r.self_samples,
            r.total_samples,
            printable(r.label),
        )
        for r in prof.rank(by, lines=lines)
    ]


FILTER_CASES = [
    ([], {}),
    (["--idle"], {"idle": True}),
    (["--gil", "--threads"], {"gil": True, "per_thread": True}),
    (["--from", "0.5", "--until", "2.25"], {"start": 0.5, "end": 2.25}),
    (["--thread", "4243", "--thread", "4244"], {"threads": [4243, 4244]}),
]


@pytest.mark.parametrize("argv, kwargs", FILTER_CASES)
@pytest.mark.parametrize("by, lines", [("self", False), ("total", True)])
def test_rank_is_what_flamekit_top_prints(
    synthetic: Path, argv: list[str], kwargs: dict, by: str, lines: bool
):
    r = flamekit_cli(
        "top", str(synthetic), "-n", "0", "--sort", by, *(["--lines"] if lines else []), *argv
    )
    assert r.returncode == 0, r.stderr
    prof = flamekit.open(synthetic).profile(**kwargs)
    text = r.stdout.decode()
    assert text.splitlines()[0].startswith(f"{len(prof):,} samples selected")
    shown = top_rows(text)
    assert len(shown) > 3
    assert shown == api_rows(prof, by, lines)


def naive_ranking(rec: Recording, spec: Spec, o: FilterOptions, lines: bool) -> Counter:
    """Self and total samples per frame identity, one selected sample at a time."""
    out: Counter = Counter()
    for i in reference(spec, o):
        _, thread, _, sid = spec.samples[i]
        keys = [f.key for f in rec.stack(sid, lines=lines)]
        if o.threads:
            t = rec.thread(thread)
            tid = t.native_tid if t.native_tid is not None else f"ref {thread}"
            label = f"thread {t.name if t.name is not None else '?'} ({tid})"
            keys.insert(0, Frame(label, label, "", None, THREAD).key)
        out[("self", keys[-1])] += 1
        for key in set(keys):
            out[("total", key)] += 1
    return out


filter_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "idle": st.booleans(),
        "gil": st.booleans(),
        "per_thread": st.booleans(),
        "start": st.sampled_from([0.0, 0.3, 1.0]),
        "end": st.sampled_from([0.8, 2.0, 30.0]),
        "threads": st.lists(st.integers(1, 10), min_size=1, max_size=3, unique=True),
    },
)


def top_argv(kw: dict) -> list[str]:
    argv = []
    for key, flag in (("idle", "--idle"), ("gil", "--gil"), ("per_thread", "--threads")):
        if kw.get(key):
            argv.append(flag)
    if "start" in kw:
        argv += ["--from", str(kw["start"])]
    if "end" in kw:
        argv += ["--until", str(kw["end"])]
    for tid in kw.get("threads", ()):
        argv += ["--thread", str(tid)]
    return argv


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), filter_kwargs, st.sampled_from(["self", "total"]), st.booleans())
def test_random_filters_rank_alike_in_the_api_top_and_by_hand(
    spec: Spec, kw: dict, by: str, lines: bool
):
    """Random traces (hostile names, idle/GIL flags, unnamed threads) and random filters:
    the API's ranking is top's table row for row, and both count what a person counting
    the selected samples one by one would."""
    try:
        rec = flamekit.open(spec.path)
        argv = ["top", spec.path, "-n", "0", "--sort", by, *(["--lines"] if lines else [])]
        r = CliRunner().invoke(top_command, argv[1:] + top_argv(kw))
        try:
            prof = rec.profile(**kw)
        except FlamekitError as exc:
            # the command refuses what the API refuses, with the same one line
            assert r.exit_code != 0 and isinstance(r.exception, type(exc)), r.output
            assert str(r.exception) == str(exc)
            return
    finally:
        Path(spec.path).unlink()
    assert r.exit_code == 0, r.output
    ranked = prof.rank(by, lines=lines)
    assert top_rows(r.output) == api_rows(prof, by, lines)
    counted: Counter = Counter()
    for row in ranked:
        counted[("self", row.frame.key)] += row.self_samples
        counted[("total", row.frame.key)] += row.total_samples
    want = naive_ranking(rec, spec, prof.options, lines)
    assert +counted == want
    # most first, by the chosen count
    key = [
        (r.self_samples, r.total_samples) if by == "self" else (r.total_samples, r.self_samples)
        for r in ranked
    ]
    assert key == sorted(key, reverse=True)


# -- outputs: the API writes convert's bytes ------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "argv, kwargs, lines",
    [
        ([], {}, True),
        (["--threads", "--idle", "--no-lines"], {"per_thread": True, "idle": True}, False),
    ],
)
def test_write_is_flamekit_convert_byte_for_byte(
    synthetic: Path, tmp_path: Path, fmt: str, argv: list[str], kwargs: dict, lines: bool
):
    cli_out = tmp_path / f"cli.{fmt}"
    r = flamekit_cli("convert", str(synthetic), "--to", fmt, "-o", str(cli_out), *argv)
    assert r.returncode == 0, r.stderr
    prof = flamekit.open(synthetic).profile(**kwargs)
    api_out = tmp_path / f"api.{fmt}"
    size = prof.write(fmt, api_out, lines=lines)
    want = cli_out.read_bytes()
    assert api_out.read_bytes() == want and size == len(want)
    assert prof.to_bytes(fmt, lines=lines) == want
    assert b"".join(prof.chunks(fmt, lines=lines)) == want
    assert fmt in flamekit.api.formats()


def test_summary_is_info_json_and_threads_are_its_threads():
    r = flamekit_cli("info", "--json", str(TRUNCATED))
    assert r.returncode == 0
    rec = flamekit.open(TRUNCATED)
    assert json.loads(r.stdout) == json.loads(json.dumps(rec.summary))
    assert rec.truncated and rec.truncation and rec.summary["complete"] is False
    assert [t.name for t in rec.threads] == [t["name"] for t in rec.summary["threads"]]
    assert [t.native_tid for t in rec.threads] == [t["tid"] for t in rec.summary["threads"]]
    assert rec.header.pid == 4242 and rec.header.rate_hz == rec.summary["rate_hz"]
    assert len(rec) == len(rec.samples) == rec.summary["samples"] == 1025


# -- rows, threads, stacks: what the trace holds -------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(max_samples=80))
def test_rows_threads_and_stacks_are_what_was_written(spec: Spec):
    try:
        rec = flamekit.open(spec.path)
    finally:
        Path(spec.path).unlink()
    rows = rec.samples
    assert len(rows) == len(spec.samples)
    assert [tuple(r) for r in rows] == spec.samples
    assert [tuple(rows[i]) for i in range(-len(rows), 0)] == spec.samples
    assert [tuple(r) for r in rows[1:-1:2]] == spec.samples[1:-1:2]
    for row in rows:
        assert row.idle == bool(row.flags & 1) and row.gil == bool(row.flags & 2)
        assert rec.thread(row.thread).native_tid == spec.tids[row.thread]
    cols = rows.columns()
    assert [tuple(c) for c in zip(*cols.values())] == spec.samples
    assert list(cols) == list(flamekit.SampleRow._fields)
    assert sorted(t.ref for t in rec.threads) == list(range(len(spec.tids)))
    assert [rec.thread(i).name for i in range(len(spec.tids))] == spec.thread_names
    codes = {c.ref: c for c in spec.codes}
    written = {sid: frames for sid, frames in rec.trace.stacks.items()}
    stacks = rec.stacks(lines=False)
    for sid, frames in written.items():
        # root first: the trace stores the innermost frame first
        names = [(codes[ref].name, codes[ref].filename) for ref, _ in reversed(frames)]
        assert [(f.name, f.file) for f in stacks[sid]] == names or (not frames)
        assert [f.line for f in stacks[sid]] == [None] * len(stacks[sid])
    assert [f.label() for f in stacks[R.EMPTY_STACK]] == ["<no Python frames>"]


def test_stack_counts_add_up_to_the_profile(synthetic: Path):
    prof = flamekit.open(synthetic).profile(per_thread=True)
    counts = prof.stack_counts()
    assert sum(counts.values()) == len(prof)
    assert all(stack[0].kind == "thread" for stack in counts)


# -- errors ---------------------------------------------------------------------------------


def _empty_trace(path: Path) -> Path:
    with open(path, "wb") as f:
        TraceWriter(f, R.Header("t", 0, 0, 100.0, 1)).close("duration")
    return path


def test_errors_are_flamekit_errors(synthetic: Path, tmp_path: Path):
    cases = [
        (lambda: flamekit.open(tmp_path / "missing.fkt"), TraceError, "no such file"),
        (lambda: flamekit.open(tmp_path), TraceError, "is a directory"),
    ]
    rec = flamekit.open(synthetic)
    prof = rec.profile()
    cases += [
        (lambda: rec.profile(start=2.0, end=1.0), UsageError, "later than --from"),
        (lambda: rec.profile(start=-1.0), UsageError, "--from"),
        (lambda: rec.profile(threads=[99999]), UsageError, "no thread with TID 99999"),
        (lambda: prof.rank("own"), UsageError, "rank by 'self' or 'total'"),
        (lambda: prof.to_bytes("png"), UsageError, "unknown format 'png'"),
        (lambda: prof.write("svg", tmp_path), OutputError, "is a directory"),
        (lambda: prof.write("svg", tmp_path / "no" / "x.svg"), OutputError, "does not exist"),
        (lambda: prof.write("svg", synthetic), OutputError, "it is the input trace"),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind, match=re.escape(words)) as info:
            call()
        assert isinstance(info.value, FlamekitError)
    assert flamekit.TraceError is TraceError and flamekit.FlamekitError is FlamekitError


def test_an_empty_profile_is_a_result_that_says_why(synthetic: Path, tmp_path: Path):
    """No samples (an empty trace, or filters that keep none) is no error: the profile
    is empty, ranks to no rows, writes a valid empty file of every format, and says why."""
    empty = flamekit.open(_empty_trace(tmp_path / "e.fkt")).profile()
    nothing = flamekit.open(synthetic).profile(start=1e6)
    assert empty.why_empty == "the trace holds no samples"
    assert nothing.why_empty is not None
    assert nothing.why_empty.startswith("no samples match the filters")
    assert flamekit.open(synthetic).profile().why_empty is None
    for prof in (empty, nothing):
        assert len(prof) == 0 and prof.rank() == [] and prof.stack_counts() == {}
        for fmt in formats():  # only folded stacks have no frame of their own
            assert (prof.to_bytes(fmt) == b"") == (fmt == "collapsed"), fmt


def test_top_escapes_lone_surrogates_like_every_text_output():
    """A name the file reader could never produce (UTF-8 cannot carry a lone surrogate),
    but a trace built in memory can: top's table shows it escaped, as diff's does."""
    trace = load(EXAMPLE)
    trace.codes = {k: replace(c, qualname=c.name + "\ud800\x1b") for k, c in trace.codes.items()}
    prof = Recording(trace).profile()
    text = render_top(prof, prof.rank())
    assert "\\ud800\\x1b (app/" in text
    text.encode("utf-8")  # strict: nothing unencodable is left


# -- the README's example -------------------------------------------------------------------


def test_the_readme_example_prints_what_the_readme_shows(tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    shown = re.search(r"\nprints .*?\n\n```\n(.*?)```", section, re.S)[1]
    code = code.replace("formats/examples/", f"{ROOT}/formats/examples/")
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == shown
    tid = flamekit.open(EXAMPLE).threads[0].native_tid
    cli = flamekit_cli("convert", str(EXAMPLE), "--thread", str(tid), "--to", "svg", "-o", "-")
    assert (tmp_path / "main.svg").read_bytes() == cli.stdout
    top = flamekit_cli("top", str(EXAMPLE), "--thread", str(tid), "-n", "3").stdout.decode()
    assert [row[4] for row in top_rows(top)] == [line[15:] for line in shown.splitlines()[3:]]


# -- staying light --------------------------------------------------------------------------

_LOADED = "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {names}))"


def test_import_flamekit_loads_nothing_else():
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import flamekit; " + _LOADED.format(names={"flamekit", "click", "msgpack"}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['flamekit']"


def test_the_api_never_imports_click_the_recorder_or_the_commands(tmp_path: Path):
    code = (
        "import flamekit\n"
        f"rec = flamekit.open({str(EXAMPLE)!r})\n"
        "rec.summary; rec.stacks(); list(rec.samples)\n"
        "prof = rec.profile(per_thread=True)\n"
        "prof.rank('total', lines=True)\n"
        "for fmt in flamekit.api.formats(): prof.to_bytes(fmt)\n"
        f"prof.write('svg', {str(tmp_path / 'x.svg')!r})\n"
        "import sys\n"
        "bad = [m for m in sys.modules if m == 'click' or m.startswith(('click.', "
        "'flamekit.record', 'flamekit.commands', 'flamekit.cli', 'ptrace', 'elftools'))]\n"
        "print(bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
