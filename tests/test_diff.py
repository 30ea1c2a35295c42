"""The diff model on traces built here, where every expected share can be computed exactly.

Properties (hypothesis): a trace against itself is zero everywhere; each side's self
shares add up to 100%; swapping the sides negates every difference and swaps added with
removed; the shares equal a naive per-sample count. Matching: frames pair up by function
and file whatever their code refs, addresses and instruction offsets, across Python
versions (real line tables from 3.10, 3.11 and 3.12) and install prefixes.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythons import pyenv_root
from test_profile import Spec, fake_lines, load_spec, random_traces

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import build_profile
from flamekit.codeformat import LINETABLE_NONE, format_for_version
from flamekit.diffing.model import Diff, Row, build_diff, file_key, rank
from flamekit.trace import TraceWriter, load
from flamekit.trace import records as R

#: A frame in a test stack: (qualified name, file, instruction offset).
F = tuple[str, str, int]


def fr(qualname: str, file: str = "app.py", offset: int = 0) -> F:
    return (qualname, file, offset)


def write_trace(
    path: Path,
    counts: Mapping[tuple[F, ...], int] | Sequence[tuple[tuple[F, ...], int]],
    *,
    qualnames: bool = True,
    ref_base: int = 1,
    python: str = "3.12.1",
    period_ns: int = 1_000_000,
    thread: tuple[str, int] = ("MainThread", 100),
    tables: Mapping[str, tuple[bytes, int, int]] | None = None,
) -> Path:
    """A trace holding ``count`` samples of each stack (frames root first).

    Each distinct (qualname, file) gets its own code record, numbered from ``ref_base``
    at made-up addresses, so two traces of the same functions share no refs.
    ``tables`` optionally gives a function a real (line table, format, firstlineno).
    """
    items = list(counts.items()) if isinstance(counts, Mapping) else list(counts)
    refs: dict[tuple[str, str], int] = {}
    with open(path, "wb") as f:
        w = TraceWriter(f, R.Header("test", 0, 0, 1e9 / period_ns, 1, (), python))
        w.write(R.Thread(0, 1, thread[1], None, thread[0], 0))
        t = 0
        for stack, n in items:
            frames = []
            for q, file, off in reversed(stack):  # the trace stores innermost first
                ref = refs.get((q, file))
                if ref is None:
                    ref = refs[(q, file)] = ref_base + len(refs)
                    table, fmt, first = (tables or {}).get(q, (b"", LINETABLE_NONE, 10))
                    name = q.rsplit(".", 1)[-1]
                    w.write(
                        R.Code(
                            ref,
                            1,
                            0x7F00_0000 + 0x40 * ref,
                            name,
                            q if qualnames else None,
                            file,
                            first,
                            table,
                            fmt,
                        )
                    )
                frames.append((ref, off))
            sid = w.stack_id(tuple(frames))
            for _ in range(n):
                t += period_ns
                w.sample(t, 0, sid, gil=True)
        w.close("duration")
    return path


def diff_of(
    a: Path, b: Path, lines: bool = False, full_filenames: bool = False, **filters: object
) -> Diff:
    opts = FilterOptions(**filters)  # type: ignore[arg-type]
    sa = select(build_profile(load(a), fake_lines, full_filenames), opts)
    sb = select(build_profile(load(b), fake_lines, full_filenames), opts)
    return build_diff(sa, sb, lines=lines)


def by_label(rows: list[Row]) -> dict[str, Row]:
    out = {r.frame.label(): r for r in rows}
    assert len(out) == len(rows)
    return out


MAIN, RUN = fr("<module>"), fr("run")
MODE_A = {
    (MAIN, RUN, fr("parse")): 700,
    (MAIN, RUN, fr("render")): 150,
    (MAIN, RUN, fr("checksum")): 150,
}
MODE_B = {
    (MAIN, RUN, fr("parse")): 600,
    (MAIN, RUN, fr("render")): 700,
    (MAIN, RUN, fr("checksum")): 700,
}


# -- exact shares --------------------------------------------------------------------------


def test_modes_rank_parse_first_with_exact_shares(tmp_path: Path):
    """The real-recording scenario, synthetically: 70% -> 30% in parse, lengths differ."""
    d = diff_of(write_trace(tmp_path / "a.fkt", MODE_A), write_trace(tmp_path / "b.fkt", MODE_B))
    assert (d.a.selected, d.b.selected) == (1000, 2000)
    rows = d.rows()
    assert rows[0].frame.label() == "parse (app.py)"
    assert rows[0].self_pct_a == pytest.approx(70) and rows[0].self_pct_b == pytest.approx(30)
    assert rows[0].self_diff == pytest.approx(-40) and rows[0].total_diff == pytest.approx(-40)
    got = by_label(rows)
    for name in ("render", "checksum"):
        r = got[f"{name} (app.py)"]
        assert (r.self_pct_a, r.self_pct_b, r.self_diff) == pytest.approx((15, 35, 20))
    for name in ("<module>", "run"):
        r = got[f"{name} (app.py)"]
        assert (r.self_diff, r.total_pct_a, r.total_pct_b, r.total_diff) == (0, 100, 100, 0)
        assert r.status == "both"
    # ranked by total change instead: parse still first, the callers (no change) last
    assert [r.frame.qualname for r in rank(d, "total")][0] == "parse"
    assert {r.frame.qualname for r in rank(d, "total")[-2:]} == {"<module>", "run"}


def test_added_and_removed_functions(tmp_path: Path):
    a = write_trace(tmp_path / "a.fkt", {(MAIN, fr("old")): 3, (MAIN, fr("both")): 1})
    b = write_trace(tmp_path / "b.fkt", {(MAIN, fr("new")): 1, (MAIN, fr("both")): 1})
    got = by_label(diff_of(a, b).rows())
    assert got["old (app.py)"].status == "removed"
    assert got["old (app.py)"].self_diff == pytest.approx(-75)
    assert got["new (app.py)"].status == "added"
    assert got["new (app.py)"].self_diff == pytest.approx(50)
    assert got["both (app.py)"].status == "both"
    assert got["both (app.py)"].self_diff == pytest.approx(25)


def test_traces_with_nothing_in_common_diff_to_all_added_or_removed(tmp_path: Path):
    a = write_trace(
        tmp_path / "a.fkt", {(fr("a1", "x.py"), fr("a2", "x.py")): 5, (fr("a3", "x.py"),): 3}
    )
    b = write_trace(tmp_path / "b.fkt", {(fr("b1", "y.py"),): 2, (fr("a1", "y.py"),): 2})
    rows = diff_of(a, b).rows()
    status = {r.frame.label(): r.status for r in rows}
    assert status == {
        "a1 (x.py)": "removed",
        "a2 (x.py)": "removed",
        "a3 (x.py)": "removed",
        "b1 (y.py)": "added",
        "a1 (y.py)": "added",  # same name, another file: another function
    }
    assert sum(r.self_diff for r in rows if r.status == "added") == pytest.approx(100)
    assert sum(r.self_diff for r in rows if r.status == "removed") == pytest.approx(-100)


def test_recursion_counts_a_sample_once_in_total(tmp_path: Path):
    rec = fr("walk")
    a = write_trace(tmp_path / "a.fkt", {(MAIN, rec, rec, rec): 2, (MAIN, fr("other")): 2})
    b = write_trace(tmp_path / "b.fkt", {(MAIN, rec): 1, (MAIN, fr("other")): 3})
    got = by_label(diff_of(a, b).rows())
    walk = got["walk (app.py)"]
    assert (walk.total_a, walk.total_b, walk.self_a, walk.self_b) == (2, 1, 2, 1)
    assert walk.total_diff == pytest.approx(-25)


# -- properties ------------------------------------------------------------------------------


def _check_sides_add_up(d: Diff) -> None:
    rows = d.rows()
    for side in "ab":
        n = getattr(d, side).selected
        assert sum(getattr(r, f"self_{side}") for r in rows) == n
        assert sum(getattr(r, f"self_pct_{side}") for r in rows) == pytest.approx(100)
        for r in rows:
            assert 0 <= getattr(r, f"self_{side}") <= getattr(r, f"total_{side}") <= n
    assert sum(ca for ca, _ in d.stacks.values()) == d.a.selected
    assert sum(cb for _, cb in d.stacks.values()) == d.b.selected
    assert sum(r.self_diff for r in rows) == pytest.approx(0, abs=1e-9)


def _selections(spec: Spec, threads: bool, idle: bool):
    prof = build_profile(load_spec(spec), fake_lines)
    return select(prof, FilterOptions(threads=threads, idle=idle))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), st.booleans(), st.booleans(), st.booleans())
def test_a_trace_against_itself_is_zero_everywhere(
    spec: Spec, threads: bool, idle: bool, lines: bool
):
    sel = _selections(spec, threads, idle)
    if not len(sel):
        return
    d = build_diff(sel, sel, lines=lines)
    assert all(ca == cb for ca, cb in d.stacks.values())
    for r in d.rows():
        assert r.self_diff == 0 and r.total_diff == 0 and r.status == "both"
    _check_sides_add_up(d)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_traces(), random_traces(), st.booleans(), st.booleans())
def test_swapping_the_sides_negates_every_difference(
    sa: Spec, sb: Spec, threads: bool, lines: bool
):
    a, b = _selections(sa, threads, True), _selections(sb, threads, True)
    if not len(a) or not len(b):
        return
    ab, ba = build_diff(a, b, lines=lines), build_diff(b, a, lines=lines)
    _check_sides_add_up(ab)
    rows_ba = {r.key: r for r in ba.rows()}
    assert len(rows_ba) == len(ab.rows())
    swap = {"both": "both", "added": "removed", "removed": "added"}
    for r in ab.rows():
        s = rows_ba[r.key]
        assert s.self_diff == -r.self_diff and s.total_diff == -r.total_diff
        assert (s.self_a, s.self_b, s.total_a, s.total_b) == (
            r.self_b,
            r.self_a,
            r.total_b,
            r.total_a,
        )
        assert s.status == swap[r.status]
    assert {k: (cb, ca) for k, (ca, cb) in ab.stacks.items()} == ba.stacks


stack_st = st.lists(st.sampled_from(["f", "g", "h", "k"]), min_size=1, max_size=4)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(stack_st, st.integers(1, 30)), min_size=1, max_size=6),
    st.lists(st.tuples(stack_st, st.integers(1, 30)), min_size=1, max_size=6),
)
def test_shares_equal_a_naive_per_sample_count(
    tmp_path_factory: pytest.TempPathFactory, sa: list, sb: list
):
    tmp = tmp_path_factory.mktemp("naive")
    sides = []
    for name, spec in (("a", sa), ("b", sb)):
        stacks = [(tuple(fr(q) for q in names), n) for names, n in spec]
        sides.append(
            (write_trace(tmp / f"{name}.fkt", stacks, ref_base=7 if name == "b" else 1), spec)
        )
    d = diff_of(sides[0][0], sides[1][0])
    want: dict[str, list[float]] = {}
    for i, (_, spec) in enumerate(sides):
        samples = [names for names, n in spec for _ in range(n)]
        self_c = Counter(s[-1] for s in samples)
        total_c = Counter(q for s in samples for q in set(s))
        for q in total_c:
            w = want.setdefault(q, [0.0, 0.0, 0.0, 0.0])
            w[i] = 100 * self_c[q] / len(samples)
            w[2 + i] = 100 * total_c[q] / len(samples)
    got = {
        r.frame.qualname: [r.self_pct_a, r.self_pct_b, r.total_pct_a, r.total_pct_b]
        for r in d.rows()
    }
    assert got.keys() == want.keys()
    for q in want:
        assert got[q] == pytest.approx(want[q])


# -- matching ------------------------------------------------------------------------------


def test_frames_match_by_function_and_file_not_refs_or_offsets(tmp_path: Path):
    """Other code refs, addresses and offsets: functions still match, lines where equal."""
    # fake_lines: line = firstlineno + offset // 4, so offsets 0..3 share a line
    a = write_trace(tmp_path / "a.fkt", {(fr("main", "m.py", 0), fr("work", "m.py", 4)): 5})
    b = write_trace(
        tmp_path / "b.fkt", {(fr("main", "m.py", 2), fr("work", "m.py", 6)): 10}, ref_base=50
    )
    for lines in (False, True):
        d = diff_of(a, b, lines=lines)
        assert all(r.self_diff == 0 and r.total_diff == 0 and r.status == "both" for r in d.rows())
        assert len(d.stacks) == 1
    c = write_trace(
        tmp_path / "c.fkt", {(fr("main", "m.py", 0), fr("work", "m.py", 8)): 5}, ref_base=9
    )
    assert all(r.self_diff == 0 for r in diff_of(a, c).rows())
    moved = by_label(diff_of(a, c, lines=True).rows())
    assert moved["work (m.py:11)"].status == "removed"
    assert moved["work (m.py:12)"].status == "added"


def test_a_recording_without_qualnames_matches_by_name(tmp_path: Path):
    """Python < 3.11 records no co_qualname: 'run' there is 'Worker.run' on 3.11+."""
    old = write_trace(
        tmp_path / "old.fkt", {(MAIN, fr("Worker.run")): 4}, qualnames=False, python="3.10.13"
    )
    new = write_trace(tmp_path / "new.fkt", {(MAIN, fr("Worker.run")): 4}, python="3.12.1")
    for a, b in ((old, new), (new, old)):
        d = diff_of(a, b)
        assert all(r.status == "both" and r.self_diff == 0 for r in d.rows())
    assert {r.frame.label() for r in diff_of(old, new).rows()} == {
        "<module> (app.py)",
        "Worker.run (app.py)",
    }
    # with qualnames on both sides, two classes' methods stay apart
    both = write_trace(tmp_path / "two.fkt", {(MAIN, fr("Other.run")): 4}, python="3.12.1")
    assert {r.status for r in diff_of(new, both).rows() if "run" in r.frame.qualname} == {
        "added",
        "removed",
    }


@pytest.mark.parametrize(
    "path, key",
    [
        ("/usr/lib/python3.11/json/decoder.py", "<stdlib>/json/decoder.py"),
        ("/root/.pyenv/versions/3.12.1/lib/python3.12/json/decoder.py", "<stdlib>/json/decoder.py"),
        ("/opt/py/lib/python3.13t/threading.py", "<stdlib>/threading.py"),
        ("/usr/lib/python3/dist-packages/requests/api.py", "<site-packages>/requests/api.py"),
        ("/v/lib/python3.11/site-packages/numpy/core.py", "<site-packages>/numpy/core.py"),
        ("/home/me/proj/app.py", "/home/me/proj/app.py"),
        ("app.py", "app.py"),
        ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap>"),
    ],
)
def test_file_keys_drop_install_prefixes(path: str, key: str):
    assert file_key(path) == key


def test_the_standard_library_matches_across_versions(tmp_path: Path):
    a = write_trace(
        tmp_path / "a.fkt",
        {(MAIN, fr("JSONDecoder.decode", "/usr/lib/python3.11/json/decoder.py")): 3},
    )
    b = write_trace(
        tmp_path / "b.fkt",
        {(MAIN, fr("JSONDecoder.decode", "/x/versions/3.12.1/lib/python3.12/json/decoder.py")): 3},
    )
    rows = diff_of(a, b).rows()
    assert all(r.status == "both" and r.self_diff == 0 for r in rows)
    # labels show the file relative to the standard library; with full file names,
    # they match the same way and show b's real path
    assert "JSONDecoder.decode (json/decoder.py)" in {r.frame.label() for r in rows}
    rows = diff_of(a, b, full_filenames=True).rows()
    assert all(r.status == "both" and r.self_diff == 0 for r in rows)
    assert "JSONDecoder.decode (/x/versions/3.12.1/lib/python3.12/json/decoder.py)" in {
        r.frame.label() for r in rows
    }


def test_thread_roots_match_by_thread_name_not_tid(tmp_path: Path):
    a = write_trace(tmp_path / "a.fkt", MODE_A, thread=("MainThread", 111))
    b = write_trace(tmp_path / "b.fkt", MODE_A, thread=("MainThread", 222))
    d = diff_of(a, b, threads=True)
    assert all(r.status == "both" and r.total_diff == 0 for r in d.rows())
    assert by_label(d.rows())["thread MainThread"].total_pct_b == 100
    assert all(sk[0] == ("thread", "MainThread") for sk in d.stacks)


# -- real line tables of three Python versions ------------------------------------------------

SOURCE = """
class Parser:
    def parse(self, text):
        out = []
        for part in text.split(","):
            out.append(part.strip())
        return out

def main(p):
    total = 0
    for i in range(3):
        total += len(p.parse("a, b"))
    return total
"""
#: (function, line) -> samples: the same lines sampled on every interpreter
LINE_SAMPLES = {("Parser.parse", 5): 6, ("Parser.parse", 6): 9, ("main", 12): 4}

DUMP = r"""
import json, sys, types
src = sys.stdin.read()
mod = compile(src, "/srv/app/parser.py", "exec")
out = {}
def walk(c, prefix):
    for k in c.co_consts:
        if isinstance(k, types.CodeType):
            q = getattr(k, "co_qualname", None) or (prefix + k.co_name)
            lines = {}
            for start, end, line in k.co_lines():
                for off in range(start, end, 2):
                    if line is not None:
                        lines.setdefault(line, off)
            out[q] = {"table": k.co_linetable.hex(), "first": k.co_firstlineno, "lines": lines}
            walk(k, q + ".")
walk(mod, "")
print(json.dumps(out))
"""


def _interpreter(minor: int) -> str:
    found = sorted((pyenv_root() / "versions").glob(f"3.{minor}.*/bin/python3.{minor}"))
    if not found:
        pytest.fail(f"CPython 3.{minor} is missing: the machine image should have it")
    return str(found[-1])


def _recorded_on(tmp_path: Path, minor: int) -> Path:
    """A trace of LINE_SAMPLES as Python 3.<minor> would record it: its own bytecode
    offsets, its own line-table format, qualnames only from 3.11."""
    r = subprocess.run(
        [_interpreter(minor), "-c", DUMP], input=SOURCE, capture_output=True, text=True, check=True
    )
    codes = json.loads(r.stdout)
    fmt = format_for_version(3, minor)
    tables = {q: (bytes.fromhex(c["table"]), fmt, c["first"]) for q, c in codes.items()}
    main_call = codes["main"]["lines"]["12"]
    stacks = []
    for (q, line), n in LINE_SAMPLES.items():
        leaf = (q, "/srv/app/parser.py", codes[q]["lines"][str(line)])
        stack = ((("main", "/srv/app/parser.py", main_call),) if q != "main" else ()) + (leaf,)
        stacks.append((stack, n * (minor - 8)))  # a different length on every version
    return write_trace(
        tmp_path / f"py3{minor}.fkt",
        stacks,
        qualnames=minor >= 11,
        python=f"3.{minor}",
        tables=tables,
        ref_base=minor * 100,
    )


def test_recordings_on_310_311_and_312_of_the_same_code_match_line_by_line(tmp_path: Path):
    traces = {m: _recorded_on(tmp_path, m) for m in (10, 11, 12)}
    offsets = set()
    for p in traces.values():
        offsets.add(tuple(sorted(off for s in load(p).stacks.values() for _, off in s)))
    assert len(offsets) > 1  # the interpreters really do put these lines at other offsets
    for a in traces.values():
        for b in traces.values():
            for lines in (False, True):
                sa = select(build_profile(load(a)), FilterOptions())
                sb = select(build_profile(load(b)), FilterOptions())
                d = build_diff(sa, sb, lines=lines)
                rows = d.rows()
                assert all(r.status == "both" for r in rows), [
                    (r.frame.label(), r.status) for r in rows
                ]
                assert all(r.self_diff == pytest.approx(0, abs=1e-9) for r in rows)
                if lines:
                    labels = {r.frame.label() for r in rows}
                    assert "parse (/srv/app/parser.py:6)" in {
                        lab.replace("Parser.", "") for lab in labels
                    }
                    assert "main (/srv/app/parser.py:12)" in labels
