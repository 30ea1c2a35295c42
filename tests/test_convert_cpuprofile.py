"""Chrome .cpuprofile: the tree, the samples in time order, hostile names, real readers.

Real readers: DevTools' Performance-panel engine (npm ``@paulirish/trace_engine``, pinned)
run in node the way DevTools loads a .cpuprofile, and speedscope's importer in the real
speedscope app (tests/readers/install_formats.sh installs both).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import decode, harness
from test_convert_collapsed import hostile_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import NS, FilterOptions, select
from flamekit.analysis.profile import PYTHON, build_profile
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic


def cpuprofile_bytes(sel, lines: bool = True) -> bytes:
    return b"".join(get_format("cpuprofile").convert(sel, ConvertOptions(lines=lines)))


def us(ns: int) -> int:
    return (ns + 500) // 1000


def check_profile(data: bytes, sel, lines: bool) -> dict:
    """The structural promises of the module doc, checked against the selection."""
    assert data.startswith(b'{"nodes":[{"id":1,')  # nodes first, root first
    doc = json.loads(data)
    prof = sel.profile
    tr = prof.trace
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert len(nodes) == len(doc["nodes"])  # unique ids
    root = doc["nodes"][0]
    assert root["callFrame"]["functionName"] == "(root)" and root["children"]
    parent: dict[int, int] = {}
    for n in doc["nodes"]:
        cf = n["callFrame"]
        assert isinstance(cf["scriptId"], str)
        assert isinstance(cf["lineNumber"], int) and cf["lineNumber"] >= -1
        assert cf["columnNumber"] in (0, -1)
        for c in n["children"]:
            assert c in nodes, c  # every child exists
            assert c not in parent  # a tree: one parent each
            parent[c] = n["id"]
    assert set(parent) == set(nodes) - {1}  # everything hangs off the one root
    samples, deltas = doc["samples"], doc["timeDeltas"]
    assert len(samples) == len(deltas) == len(sel)
    assert all(s in nodes for s in samples)
    assert all(d >= 0 for d in deltas)
    hits: dict[int, int] = {}
    for s in samples:
        hits[s] = hits.get(s, 0) + 1
    for n in doc["nodes"]:
        assert n["hitCount"] == hits.get(n["id"], 0)
    # time: the deltas add up to each sample's own (rounded) time, and to the last one's
    origin = tr.header.start_monotonic_ns
    opts = sel.options
    start = round(opts.start_s * NS) if opts.start_s is not None else 0
    assert doc["startTime"] == us(origin + start)
    clock = doc["startTime"]
    for k, i in enumerate(sel.indices):
        clock += deltas[k]
        assert clock == us(origin + tr.times[i])
    end = tr.duration_ns if opts.until_s is None else min(tr.duration_ns, round(opts.until_s * NS))
    assert doc["endTime"] == max(us(origin + end), clock)
    # each sample's path from the root is its stack, names exactly as recorded
    for k, i in enumerate(sel.indices):
        path = []
        node = samples[k]
        while node != 1:
            path.append(nodes[node]["callFrame"])
            node = parent[node]
        want = sel.stack_of(tr.columns.thread[i], tr.columns.stack[i], lines)
        assert [cf["functionName"] for cf in reversed(path)] == [
            prof.frames[f].qualname for f in want
        ]
        for cf, fid in zip(reversed(path), want):
            fr = prof.frames[fid]
            if fr.kind == PYTHON and fr.file:
                assert cf["url"] == fr.file and cf["scriptId"] != "0"
                line = fr.line if fr.line is not None else fr.firstlineno
                if line:
                    assert cf["lineNumber"] == line - 1
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_tree_and_time_order_for_any_trace(
    spec: Spec, threads: bool, idle: bool, lines: bool, window: bool
):
    tr = load_spec(spec)
    prof = build_profile(tr, fake_lines)
    opts = FilterOptions(threads=threads, idle=idle)
    if window and len(tr) > 2:
        mid = tr.times[len(tr) // 2] / NS
        opts = FilterOptions(threads=threads, idle=idle, start_s=mid / 2, until_s=mid + 0.001)
    sel = select(prof, opts)
    if not len(sel):
        return
    check_profile(cpuprofile_bytes(sel, lines), sel, lines)


def test_hostile_names_stay_json(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    data = cpuprofile_bytes(sel)
    data.decode("ascii")
    doc = check_profile(data, sel, True)
    names = {n["callFrame"]["functionName"] for n in doc["nodes"]}
    assert set(HOSTILE) <= names
    assert "thread new\nline (42)" in names


def test_registered():
    assert formats()["cpuprofile"].extension == ".cpuprofile"


def synthetic_selection(tmp_path: Path, samples: int, nthreads: int, **filters):
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, samples=samples, stacks=80, threads=nthreads)
    return select(build_profile(load(p)), FilterOptions(**filters))


# -- real readers -----------------------------------------------------------------------


def devtools(path: Path) -> dict:
    harness.npm_package("@paulirish/trace_engine")
    return harness.run_node("devtools_cpuprofile.mjs", str(path))


def test_devtools_engine_reads_every_sample(tmp_path: Path):
    sel = synthetic_selection(tmp_path, 6000, 3, threads=True)
    path = tmp_path / "s.cpuprofile"
    data = cpuprofile_bytes(sel)
    path.write_bytes(data)
    doc = json.loads(data)
    seen = devtools(path)
    assert seen["errors"] == [] and seen["threads"] == 1
    assert seen["samples"] == len(sel) == seen["totalHitCount"]
    assert seen["rootName"] == "(root)"
    assert sorted(seen["roots"]) == sorted(
        {sel.profile.thread_label(t) for t in sel.profile.trace.threads}
    )
    # DevTools' time span is ours: first sample to the last (plus one mean interval)
    first = doc["startTime"] + doc["timeDeltas"][0]
    last = doc["startTime"] + sum(doc["timeDeltas"])
    assert abs(seen["startTime"] * 1000 - first) < 1
    assert last / 1000 <= seen["endTime"] <= (last + (last - first) / (len(sel) - 1)) / 1000 + 1e-3
    # the hottest function's share of DevTools' self time is its share of our samples
    ours = decode.cpuprofile(data)
    name, n = ours.hottest()
    share = seen["selfByName"][name] / seen["totalSelf"]
    assert abs(share - n / len(sel)) < 1 / len(sel)


def test_devtools_engine_reads_hostile_names(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions())
    path = tmp_path / "h.cpuprofile"
    path.write_bytes(cpuprofile_bytes(sel))
    seen = devtools(path)
    assert seen["errors"] == [] and seen["samples"] == len(sel)
    assert set(HOSTILE) <= set(seen["selfByName"])


def test_devtools_flame_chart_keeps_time_order(tmp_path: Path):
    """One thread: the profile calls DevTools draws start at our samples' times."""
    sel = synthetic_selection(tmp_path, 400, 1, idle=True)
    path = tmp_path / "one.cpuprofile"
    data = cpuprofile_bytes(sel)
    path.write_bytes(data)
    doc = json.loads(data)
    seen = devtools(path)
    ts = doc["startTime"] + doc["timeDeltas"][0]
    name, at, _ = seen["firstCalls"][0]
    # DevTools goes through milliseconds in floating point, so its microsecond
    # time can come back a rounding error off (8482174200.999999 for ...201);
    # our times are whole microseconds, so a thousandth of one still fails any
    # real misplacement.
    assert abs(at - ts) < 1e-3
    root_child = doc["nodes"][0]["children"]
    assert name in {n["callFrame"]["functionName"] for n in doc["nodes"] if n["id"] in root_child}


def test_speedscope_imports_the_cpuprofile(tmp_path: Path):
    sel = synthetic_selection(tmp_path, 3000, 2)
    path = tmp_path / "s.cpuprofile"
    data = cpuprofile_bytes(sel)
    path.write_bytes(data)
    shown = harness.open_in_speedscope(path)
    log = shown["log"]
    assert not log["pageErrors"] and not log["console"] and not log["dialogs"], log
    assert shown["title"] == "s.cpuprofile - speedscope"
    exported = harness.speedscope_export(tmp_path / "export.json")
    (p,) = exported["profiles"]
    doc = json.loads(data)
    # speedscope's time axis is the profile's, in microseconds
    assert p["unit"] == "microseconds"
    assert p["endValue"] - p["startValue"] <= doc["endTime"] - doc["startTime"]
    names = {f["name"] for f in exported["shared"]["frames"]}
    assert decode.cpuprofile(data).hottest()[0] in names
