"""pprof: the hand-written wire format parsed back by ``protobuf``, and ``go tool pprof``.

``protobuf`` (a test dependency only) parses the output with a descriptor built at test
time (tests/readers/profile_pb.py, checked against profile.proto). The real reader is
``go tool pprof`` from Debian's golang-go (tests/readers/install_formats.sh).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import decode, harness, profile_pb
from test_convert_collapsed import hostile_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import NS, FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert import protobuf_wire as pw
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.convert.pprof import build
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic


def pprof_bytes(sel, lines: bool = True) -> bytes:
    return b"".join(get_format("pprof").convert(sel, ConvertOptions(lines=lines)))


def check_profile(data: bytes, sel, lines: bool):
    """References, ids, values and labels, against the selection."""
    assert data[:2] == b"\x1f\x8b"  # gzip
    msg = profile_pb.parse(data)
    st_ = msg.string_table
    assert st_[0] == ""
    assert len(set(st_)) == len(st_)  # interned
    s = lambda i: st_[i]  # noqa: E731
    assert [(s(v.type), s(v.unit)) for v in msg.sample_type] == [
        ("samples", "count"),
        ("wall", "nanoseconds"),
    ]
    assert (s(msg.period_type.type), s(msg.period_type.unit)) == ("wall", "nanoseconds")
    prof = sel.profile
    tr = prof.trace
    period = round(NS / tr.header.rate_hz)
    assert msg.period == period
    assert s(msg.default_sample_type) == "wall"
    assert msg.time_nanos == tr.header.start_wall_ns + (
        round(sel.options.start_s * NS) if sel.options.start_s is not None else 0
    )
    assert msg.duration_nanos >= 0
    funcs = {f.id: f for f in msg.function}
    locs = {loc.id: loc for loc in msg.location}
    maps = {m.id: m for m in msg.mapping}
    assert len(funcs) == len(msg.function) and 0 not in funcs
    assert len(locs) == len(msg.location) and 0 not in locs
    assert 0 not in maps and all(m.has_functions for m in maps.values())
    for loc in msg.location:
        assert loc.mapping_id in maps
        assert len(loc.line) == 1 and loc.line[0].function_id in funcs
    for f in msg.function:
        for field in (f.name, f.system_name, f.filename):
            assert 0 <= field < len(st_)
    # samples: every one refers to existing locations, counts add up, labels name threads
    want: dict[tuple[int, tuple], int] = {}
    thr, stk = tr.columns.thread, tr.columns.stack
    for i in sel.indices:
        key = (thr[i], sel.stack_of(thr[i], stk[i], lines))
        want[key] = want.get(key, 0) + 1
    got: dict[tuple[str, tuple], int] = {}
    for smp in msg.sample:
        assert len(smp.value) == len(msg.sample_type)
        assert smp.value[1] == smp.value[0] * period and smp.value[0] > 0
        labels = {s(lab.key): lab for lab in smp.label}
        assert set(labels) <= {"thread", "thread_id", "pid"} and "thread" in labels
        assert labels["pid"].num in {run.pid for run in tr.runs}
        frames = []
        for lid in reversed(smp.location_id):  # root first
            fn = funcs[locs[lid].line[0].function_id]
            frames.append((s(fn.name), s(fn.filename), locs[lid].line[0].line))
        key = (
            s(labels["thread"].str),
            labels["thread_id"].num if "thread_id" in labels else None,
            labels["pid"].num,
        )
        got[(key, tuple(frames))] = got.get((key, tuple(frames)), 0) + smp.value[0]
    expect: dict[tuple, int] = {}
    for (th, stack), n in want.items():
        t = tr.threads[th]
        key = (t.name if t.name is not None else "?", t.native_tid, tr.run_of(th).pid)
        frames = tuple(
            (prof.frames[f].qualname, prof.frames[f].file, prof.frames[f].line or 0) for f in stack
        )
        expect[(key, frames)] = expect.get((key, frames), 0) + n
    assert got == expect
    assert sum(smp.value[0] for smp in msg.sample) == len(sel)
    # system_name is the plain name where it differs from the qualified one
    for f in msg.function:
        assert f.system_name == 0 or s(f.system_name) != s(f.name)
    return msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans())
def test_any_trace_parses_back_with_every_reference_intact(
    spec: Spec, threads: bool, idle: bool, lines: bool
):
    prof = build_profile(load_spec(spec), fake_lines)
    sel = select(prof, FilterOptions(threads=threads, idle=idle))
    if not len(sel):
        return
    check_profile(pprof_bytes(sel, lines), sel, lines)


def test_hostile_names_are_stored_exactly(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    msg = check_profile(pprof_bytes(sel), sel, True)
    names = {msg.string_table[f.name] for f in msg.function}
    assert set(HOSTILE) - {""} <= names
    assert "thread new\nline (42)" in names


def test_the_descriptor_matches_profile_proto():
    path = profile_pb.shared_proto()
    if path is None:
        pytest.skip("shared/data/profile.proto not beside this checkout")
    assert profile_pb.fields_in_proto(path.read_text()) == profile_pb.MESSAGES


def test_registered():
    assert formats()["pprof"].extension == ".pb.gz"


# -- the wire format ----------------------------------------------------------------------


@given(st.integers(-(1 << 63), (1 << 64) - 1))
def test_varints_parse_back_with_protobuf(value: int):
    # a uint64 field (Location.address) for the unsigned range, int64 (Line.line) below it
    if value >= 0:
        loc = profile_pb.CLASSES["Location"]()
        loc.ParseFromString(bytes(pw.Message().number(3, value)))
        assert loc.address == value
    else:
        line = profile_pb.CLASSES["Line"]()
        line.ParseFromString(bytes(pw.Message().number(2, value)))
        assert line.line == value


@given(st.lists(st.integers(0, (1 << 64) - 1), max_size=20), st.text())
def test_packed_and_strings_parse_back(values: list[int], text: str):
    m = pw.Message().packed(1, values).string(6, text)
    sample = profile_pb.CLASSES["Sample"]()
    sample.ParseFromString(bytes(pw.Message().packed(1, values)))
    assert list(sample.location_id) == values
    prof = profile_pb.CLASSES["Profile"]()
    prof.ParseFromString(bytes(pw.Message().string(6, "").string(6, text)))
    assert list(prof.string_table) == ["", text]
    assert len(m) == len(bytes(m))


def test_varint_bounds():
    assert pw.varint(0) == b"\x00" and pw.varint(300) == b"\xac\x02"
    assert pw.varint(-1) == b"\xff" * 9 + b"\x01"
    with pytest.raises(OverflowError):
        pw.varint(1 << 64)
    with pytest.raises(OverflowError):
        pw.varint(-(1 << 63) - 1)


# -- the real reader ----------------------------------------------------------------------


TOP_ROW = re.compile(r"^\s*([\d.]+)(\w*)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\w*\s+([\d.]+)%\s+(.*)$")


def go_top(path: Path, *extra: str) -> tuple[str, list[tuple[float, float, str]]]:
    """``go tool pprof -top``: (header text, rows of (flat, flat %, name))."""
    r = subprocess.run(
        [*harness.go_pprof(), "-top", "-nodecount=1000", *extra, str(path)],
        capture_output=True,
        timeout=300,
        env={"HOME": str(path.parent), "PATH": "/usr/bin:/bin", "PPROF_TMPDIR": str(path.parent)},
    )
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, err
    assert "unrecognized" not in err.lower() and "parsing profile" not in err.lower(), err
    rows = []
    for line in out.splitlines():
        m = TOP_ROW.match(line)
        if m:
            rows.append((float(m.group(1)), float(m.group(3)), m.group(7)))
    return out, rows


def test_go_pprof_agrees_on_the_top_function(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=20000, stacks=300, threads=4)
    sel = select(build_profile(load(p)), FilterOptions())
    path = tmp_path / "s.pb.gz"
    data = pprof_bytes(sel)
    path.write_bytes(data)
    ours = decode.pprof(data)[0]
    name, n = ours.hottest()
    for index in ("samples", "wall"):
        header, rows = go_top(path, "-symbolize=none", f"-sample_index={index}")
        assert rows, header
        flat, pct, top = rows[0]
        assert top == name
        assert abs(pct - 100 * n / len(sel)) <= 0.01 + 100 / len(sel)
    _, rows = go_top(path, "-symbolize=none", "-sample_index=samples")
    assert sum(r[0] for r in rows) == len(sel)  # every sample, nothing dropped


def test_go_pprof_shows_bracketed_names_even_when_symbolizing(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions())
    path = tmp_path / "h.pb.gz"
    path.write_bytes(pprof_bytes(sel))
    for extra in ((), ("-symbolize=none",)):
        _, rows = go_top(path, "-sample_index=samples", *extra)
        shown = {r[2] for r in rows}
        for name in ("<module>", "<lambda>", "a&b<c>", "quote'\"", "\U0001f525fire\U00010348"):
            assert name in shown, (extra, sorted(shown))
    raw = subprocess.run(
        [*harness.go_pprof(), "-raw", str(path)], capture_output=True, timeout=300
    ).stdout.decode("utf-8", "replace")
    assert "thread:[Main;Thread <x> & 'y']" in raw and "thread_id:[41]" in raw


def test_build_is_deterministic(tmp_path: Path):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=500, stacks=20, threads=2)
    sel = select(build_profile(load(p)), FilterOptions())
    assert build(sel, ConvertOptions()) == build(sel, ConvertOptions())
    assert pprof_bytes(sel) == pprof_bytes(sel)
