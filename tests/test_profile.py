"""The symbolized model: per-stack symbolization, interning, root-first order, hostile names.

Also home of ``random_traces``, the hypothesis strategy for small traces with hostile names
that the filter and collapsed tests use too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flamekit.analysis.profile import EMPTY, PYTHON, THREAD, Frame, build_profile
from flamekit.codeformat import LINETABLE_NONE
from flamekit.trace import Trace, TraceWriter, load
from flamekit.trace import records as R
from flamekit.trace.synthetic import write_synthetic

#: Names a line-based or markup-based output could trip on.
HOSTILE = [
    "a;b",
    "new\nline",
    "cr\rlf",
    "sp ace",
    "ends 12",
    "<module>",
    "<lambda>",
    "a&b<c>",
    "quote'\"",
    "\U0001f525fire\U00010348",
    "back\\slash\\x3b",
    "tab\there",
    "para\u2028sep",
    "nel\x85",
    "",
    " ",
    "-",
]
names = st.sampled_from(HOSTILE) | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@dataclass
class Spec:
    """What a generated trace holds, for reference computations in tests."""

    path: str
    codes: list[R.Code]
    tids: list[int | None]
    thread_names: list[str | None]
    samples: list[tuple[int, int, int, int]]  # (time ns, thread ref, flags, stack id)


@st.composite
def random_traces(draw: st.DrawFn, max_samples: int = 60) -> Spec:
    """A small trace on disk: hostile names, empty stacks, idle/GIL flags, bursts of time."""
    ncodes = draw(st.integers(1, 5))
    codes = [
        R.Code(
            ref + 1,
            1,
            0x1000 + ref,
            draw(names),
            draw(st.none() | names),
            draw(names),
            draw(st.integers(0, 50)),
            b"",
            LINETABLE_NONE,
        )
        for ref in range(ncodes)
    ]
    nthreads = draw(st.integers(1, 4))
    tids = draw(
        st.lists(st.none() | st.integers(1, 10), min_size=nthreads, max_size=nthreads, unique=True)
    )
    tnames = [draw(st.none() | names) for _ in range(nthreads)]
    frames = st.tuples(st.integers(1, ncodes), st.integers(-1, 40))
    shapes = draw(st.lists(st.lists(frames, max_size=5).map(tuple), min_size=1, max_size=6))
    raw = draw(
        st.lists(
            st.tuples(
                st.integers(0, 600_000_000),  # dt: bursts and gaps across the seconds
                st.integers(0, nthreads - 1),
                st.integers(0, 3),
                st.integers(0, len(shapes) - 1),
            ),
            max_size=max_samples,
        )
    )
    fd, path = tempfile.mkstemp(suffix=".fkt")
    samples = []
    with os.fdopen(fd, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 100.0, 1))
        for c in codes:
            w.write(c)
        for i in range(nthreads):
            w.write(R.Thread(i, 1, tids[i], None, tnames[i], 0))
        t = 0
        for dt, thread, flags, shape in raw:
            t += dt
            sid = w.stack_id(shapes[shape])
            w.sample(t, thread, sid, gil=bool(flags & 2), idle=bool(flags & 1))
            samples.append((t, thread, flags, sid))
        w.close("duration")
    return Spec(path, codes, tids, tnames, samples)


def fake_lines(code: R.Code, offset: int) -> int | None:
    """A deterministic stand-in for the symbolizer: some offsets have no line."""
    if offset < 0:
        return code.firstlineno
    if offset % 7 == 3:
        return None
    return code.firstlineno + offset // 4


def load_spec(spec: Spec) -> Trace:
    try:
        return load(spec.path)
    finally:
        os.unlink(spec.path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces())
def test_stacks_symbolize_root_first_with_names_intact(spec: Spec):
    trace = load_spec(spec)
    calls = []

    def resolver(code: R.Code, off: int) -> int | None:
        calls.append((code.ref, off))
        return fake_lines(code, off)

    prof = build_profile(trace, resolver)
    # every (code, offset) pair is symbolized once, however many stacks share it
    assert len(calls) == len(set(calls))
    for sid, frames in trace.stacks.items():
        got = [prof.frames[f] for f in prof.stacks[sid]]
        want = [
            Frame(
                trace.codes[ref].name,
                trace.codes[ref].name
                if trace.codes[ref].qualname is None
                else trace.codes[ref].qualname,
                trace.codes[ref].filename,
                fake_lines(trace.codes[ref], off),
            )
            for ref, off in reversed(frames)
        ]
        if not frames:
            assert [f.kind for f in got] == [EMPTY]
        else:
            assert got == want  # names, files exactly as recorded, outermost first
    assert [prof.frames[f].kind for f in prof.stacks[R.EMPTY_STACK]] == [EMPTY]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces())
def test_frames_are_interned_and_function_level_drops_the_line(spec: Spec):
    trace = load_spec(spec)
    prof = build_profile(trace, fake_lines)
    keys = [f.key for f in prof.frames]
    assert len(keys) == len(set(keys))  # one id per identity
    assert len(prof.function_of) == len(prof.frames)
    for fid, frame in enumerate(prof.frames):
        fn = prof.frames[prof.function_of[fid]]
        assert fn.line is None
        assert (fn.kind, fn.name, fn.qualname, fn.file) == (
            frame.kind,
            frame.name,
            frame.qualname,
            frame.file,
        )
        if frame.line is None:
            assert prof.function_of[fid] == fid
    for sid in trace.stacks:
        assert prof.stack(sid, lines=False) == tuple(prof.function_of[f] for f in prof.stacks[sid])


def test_labels_follow_the_convention_and_never_end_in_a_count():
    f = Frame("run", "Worker.run", "app/w.py", 12)
    assert f.label() == "Worker.run (app/w.py:12)"
    assert Frame("run", "Worker.run", "app/w.py").label() == "Worker.run (app/w.py)"
    assert Frame("thread x (1)", "thread x (1)", "", None, THREAD).label() == "thread x (1)"
    assert Frame("x", "x 12", "f 7", 3, PYTHON).label().endswith(")")


def test_thread_frames_name_the_thread_and_its_tid(tmp_path: Path):
    p = tmp_path / "t.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 100.0, 1))
        w.write(R.Thread(0, 1, 77, None, "Main;Thread\n", 0))
        w.write(R.Thread(1, 1, None, None, None, 0))
        w.sample(1, 0, 0)
        w.close("duration")
    prof = build_profile(load(p), fake_lines)
    assert prof.label(prof.thread_frame(0)) == "thread Main;Thread\n (77)"
    assert prof.label(prof.thread_frame(1)) == "thread ? (ref 1)"
    assert prof.thread_frame(0) == prof.thread_frame(0)
    assert prof.frames[prof.thread_frame(0)].kind == THREAD


def test_real_line_tables_symbolize_to_lines_within_the_function(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=2000, stacks=200, threads=2)
    trace = load(p)
    prof = build_profile(trace)
    assert len(prof.stacks) == len(trace.stacks) + 1  # plus the empty stack
    py = [f for f in prof.frames if f.kind == PYTHON and f.line is not None]
    assert py
    for f in py:
        assert f.firstlineno is not None and f.firstlineno <= f.line <= f.firstlineno + 10


def test_per_stack_cost_not_per_sample(tmp_path: Path):
    """Symbolizing is bounded by distinct (code, offset) pairs, not by samples."""
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=20000, stacks=30, threads=2)
    trace = load(p)
    n = 0

    def counting(code: R.Code, off: int) -> int | None:
        nonlocal n
        n += 1
        return code.firstlineno

    build_profile(trace, counting)
    assert n <= sum(len(s) for s in trace.stacks.values()) < 20000


def test_lines_match_cpythons_own_line_table(tmp_path: Path):
    """The model's lines (through flamekit.symbolize) agree with ``co_lines`` of this Python."""
    import sys
    import types

    from flamekit.codeformat import format_for_version

    src = "def f(x):\n    y = x + 1\n    if y:\n        return [\n            y,\n        ]\n    return 0\n"
    code = next(c for c in compile(src, "m.py", "exec").co_consts if isinstance(c, types.CodeType))
    if not hasattr(code, "co_lines"):
        pytest.skip("co_lines needs Python 3.10+")
    want = {}
    for start, end, line in code.co_lines():
        for off in range(start, end, 2):
            want[off] = line
    p = tmp_path / "real.fkt"
    with open(p, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 100.0, 1))
        table = code.co_linetable
        fmt = format_for_version(*sys.version_info[:2])
        w.write(R.Code(1, 1, 1, "f", "f", "m.py", code.co_firstlineno, table, fmt))
        w.write(R.Thread(0, 1, 1, None, "Main", 0))
        sids = {off: w.stack_id(((1, off),)) for off in want}
        for sid in sids.values():
            w.sample(1, 0, sid)
        w.close("duration")
    prof = build_profile(load(p))
    for off, sid in sids.items():
        (fid,) = prof.stacks[sid]
        assert prof.frames[fid].line == want[off], off
