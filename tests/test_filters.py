"""The shared filter layer: every option combination against a naive reference predicate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profile import Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import FilterOptions, explain_empty, select
from flamekit.analysis.profile import THREAD, build_profile
from flamekit.commands._common import filter_options
from flamekit.errors import UsageError
from flamekit.trace import TraceWriter, load
from flamekit.trace import records as R

IDLE, GIL = 1, 2


def reference(spec: Spec, o: FilterOptions) -> list[int]:
    """The samples a person would pick by reading the options' help, one by one."""
    out = []
    for i, (t, thread, flags, _sid) in enumerate(spec.samples):
        if flags & IDLE and not o.idle:
            continue
        if o.gil and not flags & GIL:
            continue
        secs = t / 1e9
        if o.start_s is not None and secs < o.start_s:
            continue
        if o.until_s is not None and secs >= o.until_s:
            continue
        if o.thread_ids and spec.tids[thread] not in o.thread_ids:
            continue
        out.append(i)
    return out


# Window bounds on a millisecond grid, so float rounding of the bound cannot matter.
seconds = st.none() | st.integers(0, 40_000).map(lambda ms: ms / 1000)


@st.composite
def options_for(draw: st.DrawFn, spec: Spec) -> FilterOptions:
    start = draw(seconds)
    until = draw(seconds)
    if start is not None and until is not None and until <= start:
        until = None
    known = [t for t in spec.tids if t is not None]
    tids = draw(st.lists(st.sampled_from(known), unique=True, max_size=2)) if known else []
    return FilterOptions(
        threads=draw(st.booleans()),
        idle=draw(st.booleans()),
        gil=draw(st.booleans()),
        start_s=start,
        until_s=until,
        thread_ids=tuple(tids),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_combination_selects_what_the_reference_selects(data: st.DataObject):
    spec = data.draw(random_traces(max_samples=80))
    trace = load_spec(spec)
    prof = build_profile(trace, fake_lines)
    o = data.draw(options_for(spec))
    sel = select(prof, o)
    want = reference(spec, o)
    assert list(sel.indices) == want
    assert len(sel) == len(want)
    # per-sample view: the very samples, in time order
    assert list(sel.samples()) == [
        (spec.samples[i][0], spec.samples[i][1], spec.samples[i][3]) for i in want
    ]
    # aggregated views add up to the selection, at both granularities
    for lines in (True, False):
        counts = sel.stack_counts(lines=lines)
        assert sum(counts.values()) == len(want)
        assert all(n > 0 for n in counts.values())
        per_sample = Counter(sel.stack_of(th, sid, lines) for _, th, sid in sel.samples())
        assert counts == dict(per_sample)
    # rooting: thread frames first exactly when --threads, and only there
    for stack in sel.stack_counts():
        kinds = [prof.frames[f].kind for f in stack]
        if o.threads:
            assert kinds[0] == THREAD and THREAD not in kinds[1:]
        else:
            assert THREAD not in kinds
    assert sum(sel.raw_counts().values()) == len(want)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces())
def test_the_default_drops_idle_and_keeps_the_rest(spec: Spec):
    prof = build_profile(load_spec(spec), fake_lines)
    sel = select(prof, FilterOptions())
    assert len(sel) == sum(1 for s in spec.samples if not s[2] & IDLE)
    assert len(select(prof, FilterOptions(idle=True))) == len(spec.samples)


def one_thread_trace(tmp_path: Path) -> Path:
    p = tmp_path / "t.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 100.0, 1))
        w.write(R.Thread(0, 1, 11, None, "Main", 0))
        for i in range(10):
            w.sample(i * 10**9, 0, 0, idle=True)
        w.close("duration")
    return p


def test_unknown_thread_id_is_a_usage_error_naming_the_threads(tmp_path: Path):
    prof = build_profile(load(one_thread_trace(tmp_path)), fake_lines)
    with pytest.raises(UsageError, match=r"no thread with TID 99 .*11 \(Main\)"):
        select(prof, FilterOptions(thread_ids=(99,)))


def test_empty_selection_is_explained(tmp_path: Path):
    prof = build_profile(load(one_thread_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions())
    assert len(sel) == 0 and sel.stack_counts() == {}
    msg = explain_empty(prof, FilterOptions())
    assert "10 idle" in msg and "--idle" in msg


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"start_s": -1.0}, "--from"),
        ({"until_s": float("nan")}, "--until"),
        ({"start_s": 5.0, "until_s": 5.0}, "later than --from"),
        ({"start_s": float("inf")}, "--from"),
    ],
)
def test_bad_windows_are_usage_errors(kw: dict, match: str):
    with pytest.raises(UsageError, match=match):
        FilterOptions(**kw)


def test_the_click_decorator_builds_filter_options():
    seen = []

    @click.command()
    @click.argument("x")
    @filter_options
    def cmd(x: str, filters: FilterOptions) -> None:
        seen.append((x, filters))

    r = CliRunner().invoke(
        cmd,
        ["f", "--threads", "--idle", "--gil", "--from", "1.5", "--until", "3", "--thread", "7"]
        + ["--thread", "8"],
    )
    assert r.exit_code == 0, r.output
    assert seen[-1] == ("f", FilterOptions(True, True, True, 1.5, 3.0, (7, 8)))
    r = CliRunner().invoke(cmd, ["f"])
    assert seen[-1] == ("f", FilterOptions())
    r = CliRunner().invoke(cmd, ["--help"])
    for opt in ("--threads / --no-threads", "--idle", "--gil", "--from", "--until", "--thread"):
        assert opt in r.output
