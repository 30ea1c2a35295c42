"""speedscope JSON: schema, one profile per thread in real time, hostile names, the real app.

Real readers: speedscope's JSON schema with ``jsonschema``, and the speedscope app itself
(npm package ``speedscope``) in Debian's headless chromium, whose own Export of what it
imported is read back (tests/readers/install_formats.sh installs both).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from readers import harness
from test_convert_collapsed import hostile_trace
from test_profile import HOSTILE, Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import NS, FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.convert.base import ConvertOptions, formats, get_format
from flamekit.convert.speedscope import SCHEMA
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic


def speedscope(sel, lines: bool = True) -> dict:
    data = b"".join(get_format("speedscope").convert(sel, ConvertOptions(lines=lines)))
    data.decode("ascii")  # all names are escaped to ASCII
    return json.loads(data)


@pytest.fixture(scope="module")
def schema() -> dict:
    return harness.speedscope_schema()


def synthetic(tmp_path: Path, **kw) -> Path:
    p = tmp_path / "s.fkt"
    with open(p, "wb") as f:
        write_synthetic(f, **kw)
    return p


def check_document(doc: dict, sel, lines: bool) -> None:
    """Every structural promise of the module doc, against the selection itself."""
    prof = sel.profile
    tr = prof.trace
    assert doc["$schema"] == SCHEMA
    frames = doc["shared"]["frames"]
    for fr in frames:
        assert None not in fr.values()
    # Selected samples per thread, in time order.
    per_thread: dict[int, list[int]] = {}
    for i in sel.indices:
        per_thread.setdefault(tr.columns.thread[i], []).append(i)
    assert len(doc["profiles"]) == len(per_thread)
    threads = sorted(per_thread)
    busiest = max(range(len(threads)), key=lambda k: len(per_thread[threads[k]]))
    assert doc["activeProfileIndex"] == busiest
    starts = {p["startValue"] for p in doc["profiles"]}
    assert len(starts) <= 1  # one shared time axis
    total = 0
    until = sel.options.until_s
    for p, th in zip(doc["profiles"], threads):
        assert p["type"] == "sampled" and p["unit"] == "nanoseconds"
        assert p["name"] == prof.thread_label(th)
        samples, weights = p["samples"], p["weights"]
        assert len(samples) == len(weights)
        assert all(isinstance(w, int) and w > 0 for w in weights)
        assert p["endValue"] == p["startValue"] + sum(weights)
        clock = p["startValue"]
        mine = iter(per_thread[th])
        prev_empty = False
        for stack, w in zip(samples, weights):
            if not stack:
                assert not prev_empty  # gaps are merged
                prev_empty = True
                clock += w
                continue
            prev_empty = False
            i = next(mine)
            t = tr.times[i]
            # each box starts when its sample was taken (or right after a same-time one)
            assert clock == t or (clock > t and clock - t < 1000), (clock, t)
            if until is not None:
                assert clock + w <= max(round(until * NS), clock + 1)
            want = sel.stack_of(th, tr.columns.stack[i], lines)
            got = [frames[k] for k in stack]
            assert [f["name"] for f in got] == [prof.frames[f].qualname for f in want]
            for f, fid in zip(got, want):
                fr = prof.frames[fid]
                assert f.get("file", "") == fr.file
                if fr.file:
                    line = fr.line if fr.line is not None else fr.firstlineno
                    assert f.get("line") == line
            clock += w
            total += 1
        assert next(mine, None) is None
    assert total == len(sel)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_documents_are_valid_and_hold_every_sample_in_time(
    schema: dict, spec: Spec, threads: bool, idle: bool, lines: bool, window: bool
):
    tr = load_spec(spec)
    prof = build_profile(tr, fake_lines)
    opts = FilterOptions(threads=threads, idle=idle)
    if window and len(tr) > 2:
        mid = tr.times[len(tr) // 2] / NS
        opts = FilterOptions(threads=threads, idle=idle, start_s=mid / 2, until_s=mid + 0.001)
    sel = select(prof, opts)
    if not len(sel):
        return  # the command refuses an empty selection before converting
    doc = speedscope(sel, lines)
    jsonschema.validate(doc, schema)
    check_document(doc, sel, lines)


def test_synthetic_profile_per_thread_in_real_time(tmp_path: Path, schema: dict):
    tr = load(synthetic(tmp_path, samples=8000, stacks=120, threads=4))
    sel = select(build_profile(tr), FilterOptions())
    doc = speedscope(sel)
    jsonschema.validate(doc, schema)
    check_document(doc, sel, True)
    names = [p["name"] for p in doc["profiles"]]
    assert names == [f"thread MainThread ({tr.threads[0].native_tid})"] + [
        f"thread worker-{k} ({tr.threads[k].native_tid})" for k in range(1, 4)
    ]
    # idle samples are dropped by default: where they were, the thread shows a gap
    p0 = doc["profiles"][0]
    assert [] in p0["samples"]
    assert p0["startValue"] == 0 and p0["endValue"] >= tr.times[-1]


def test_idle_kept_means_no_gaps_between_samples(tmp_path: Path):
    tr = load(synthetic(tmp_path, samples=2000, stacks=40, threads=2))
    doc = speedscope(select(build_profile(tr), FilterOptions(idle=True)))
    for p in doc["profiles"]:
        inner = p["samples"][1:-1]  # a leading gap before the first sample is allowed
        assert [] not in inner


def test_hostile_names_survive_exactly(tmp_path: Path, schema: dict):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    doc = speedscope(sel)
    jsonschema.validate(doc, schema)
    names = {f["name"] for f in doc["shared"]["frames"]}
    for name in HOSTILE:
        assert name in names
    assert {p["name"] for p in doc["profiles"]} == {
        "thread Main;Thread <x> & 'y' (41)",
        "thread new\nline (42)",
    }


def test_registered():
    fmt = formats()["speedscope"]
    assert fmt.extension == ".speedscope.json" and list(formats())[:2] == [
        "collapsed",
        "speedscope",
    ]


# -- the real app -----------------------------------------------------------------------


def import_into_speedscope(tmp_path: Path, doc_bytes: bytes, name: str) -> tuple[dict, dict]:
    path = tmp_path / name
    path.write_bytes(doc_bytes)
    shown = harness.open_in_speedscope(path)
    log = shown["log"]
    assert not log["pageErrors"] and not log["console"] and not log["dialogs"], log
    assert "Something went wrong" not in shown["body"], shown["body"]
    exported = harness.speedscope_export(tmp_path / f"{name}.export.json")
    return shown, exported


def test_speedscope_app_imports_hostile_names(tmp_path: Path):
    prof = build_profile(load(hostile_trace(tmp_path)), fake_lines)
    sel = select(prof, FilterOptions(threads=True))
    data = b"".join(get_format("speedscope").convert(sel, ConvertOptions(title="hostile <&>")))
    shown, exported = import_into_speedscope(tmp_path, data, "hostile.speedscope.json")
    assert shown["title"] == "hostile <&> - speedscope"
    assert "thread Main;Thread <x> & 'y' (41)" in shown["body"]
    # speedscope's own export of what it imported: the same threads and names
    assert [p["name"] for p in exported["profiles"]] == [
        p["name"] for p in json.loads(data)["profiles"]
    ]
    names = {f["name"] for f in exported["shared"]["frames"]}
    for name in HOSTILE:
        assert name in names


def test_speedscope_app_places_samples_at_their_times(tmp_path: Path):
    tr = load(synthetic(tmp_path, samples=3000, stacks=60, threads=3))
    sel = select(build_profile(tr), FilterOptions())
    data = b"".join(get_format("speedscope").convert(sel, ConvertOptions()))
    doc = json.loads(data)
    shown, exported = import_into_speedscope(tmp_path, data, "s.speedscope.json")
    busiest = doc["profiles"][doc["activeProfileIndex"]]["name"]
    assert busiest in shown["body"]
    assert len(exported["profiles"]) == 3
    for mine, theirs in zip(doc["profiles"], exported["profiles"]):
        assert theirs["name"] == mine["name"]
        assert theirs["unit"] == "nanoseconds"
        assert (theirs["startValue"], theirs["endValue"]) == (mine["startValue"], mine["endValue"])
        # the root frames speedscope opens are exactly our non-empty samples' boxes
        # (merged where neighbours share a root frame); the gaps stay empty
        depth = 0
        busy = 0
        opened_at = None
        first = None
        for ev in theirs["events"]:
            if ev["type"] == "O":
                if depth == 0:
                    opened_at = ev["at"]
                    first = ev["at"] if first is None else first
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    busy += ev["at"] - opened_at
        clock = mine["startValue"]
        ours_busy = 0
        ours_first = None
        for stack, w in zip(mine["samples"], mine["weights"]):
            if stack:
                ours_busy += w
                ours_first = clock if ours_first is None else ours_first
            clock += w
        assert busy == ours_busy
        assert first == ours_first
