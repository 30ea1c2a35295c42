"""A process tree offline: each process its own root in every output (opened by its real
reader), ``--merge-processes`` and ``--pid``, ``info``'s process table, and ``diff``
matching a prefork server's workers by role, not pid (issue 13)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readers import decode, harness
from test_convert_collapsed import flamegraph_pl, run_flamegraph, svg_titles  # noqa: F401
from test_convert_pprof import go_top
from test_convert_speedscope import import_into_speedscope

from flamekit.analysis.filters import FilterOptions, select
from flamekit.analysis.profile import PROCESS, build_profile
from flamekit.diffing.model import build_diff
from flamekit.errors import UsageError
from flamekit.trace import load
from flamekit.trace.synthetic import write_synthetic

#: a process root's label (with --threads, the thread's root and its process's in one)
LABEL = re.compile(r"process (\d+): python3 app/service\.py(?: / thread .*)?")


def tree(tmp_path: Path, name: str = "tree.fkt", **kw) -> Path:
    p = tmp_path / name
    kw = {"samples": 4000, "stacks": 80, "threads": 6, "processes": 3, "seed": 3, **kw}
    with open(p, "wb") as f:
        write_synthetic(f, **kw)
    return p


def truth(path: Path, **filters) -> Counter[int]:
    """Selected samples per pid, from the trace itself."""
    tr = load(path)
    sel = select(build_profile(tr), FilterOptions(**filters))
    col = tr.columns.thread
    return Counter(tr.run_of(col[i]).pid for i in sel.indices)


def convert(path: Path, fmt: str, *args: str) -> bytes:
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "convert", str(path), "--to", fmt, "-o", "-", *args],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def roots_of(roots: Counter[str]) -> Counter[int]:
    """Samples per pid from samples per root frame name; every root a process's."""
    out: Counter[int] = Counter()
    for name, n in roots.items():
        m = LABEL.fullmatch(name)
        assert m, name
        out[int(m.group(1))] += n
    return out


# -- the model ------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    processes=st.integers(1, 4),
    extra_threads=st.integers(0, 3),
    samples=st.integers(1, 600),
    seed=st.integers(0, 2**16),
    threads=st.booleans(),
)
def test_each_process_is_a_root_and_merging_folds_them(
    tmp_path_factory: pytest.TempPathFactory,
    processes: int,
    extra_threads: int,
    samples: int,
    seed: int,
    threads: bool,
):
    p = tree(
        tmp_path_factory.mktemp("h"),
        samples=samples,
        threads=processes + extra_threads,
        processes=processes,
        seed=seed,
        idle_share=0.0,
    )
    prof = build_profile(load(p))
    split = select(prof, FilterOptions(threads=threads)).stack_counts()
    merged = select(prof, FilterOptions(threads=threads, merge_processes=True)).stack_counts()
    assert sum(split.values()) == sum(merged.values()) == samples
    kinds = {prof.frames[stack[0]].kind for stack in split}
    assert kinds == ({PROCESS} if processes > 1 else {"thread" if threads else "python"})
    if processes > 1:
        by_pid: Counter[str] = Counter()
        for stack, n in split.items():
            by_pid[prof.label(stack[0])] += n
        assert roots_of(by_pid) == truth(p)

        # folding the roots away gives the merged tree exactly (its thread roots, with
        # --threads, folded away too)
        def fold(counts: dict) -> Counter:
            out: Counter[tuple[int, ...]] = Counter()
            for stack, n in counts.items():
                out[stack[1:] if threads or counts is split else stack] += n
            return out

        assert fold(split) == fold(merged)
    assert not any(prof.frames[s[0]].kind == PROCESS for s in merged)


def test_pid_selects_processes_and_a_wrong_one_names_those_there_are(tmp_path: Path):
    p = tree(tmp_path)
    prof = build_profile(load(p))
    counts = truth(p)
    one = select(prof, FilterOptions(pids=(4342,)))
    assert len(one) == counts[4342] and not one.per_process  # one process: no root
    two = select(prof, FilterOptions(pids=(4342, 4442)))
    assert len(two) == counts[4342] + counts[4442] and two.per_process
    with pytest.raises(UsageError, match=r"--pid: no process 99 in .*4242 \(python3 app"):
        select(prof, FilterOptions(pids=(99,)))


# -- every output, read by its real reader ---------------------------------------------


def test_flamegraph_pl_draws_a_root_per_process(tmp_path: Path, flamegraph_pl: str):  # noqa: F811
    p = tree(tmp_path)
    folded = tmp_path / "t.collapsed"
    folded.write_bytes(convert(p, "collapsed"))
    titles = svg_titles(run_flamegraph(flamegraph_pl, folded)[0])
    seen = {int(m.group(1)): n for k, n in titles.items() if (m := LABEL.fullmatch(k))}
    assert seen == truth(p)
    merged = tmp_path / "m.collapsed"
    merged.write_bytes(convert(p, "collapsed", "--merge-processes"))
    titles = svg_titles(run_flamegraph(flamegraph_pl, merged)[0])
    assert not any(LABEL.fullmatch(k) for k in titles)
    assert titles["all"] == sum(truth(p).values())


def test_our_svg_draws_a_root_per_process(tmp_path: Path):
    p = tree(tmp_path)
    assert roots_of(decode.svg(convert(p, "svg")).roots) == truth(p)


def test_devtools_reads_a_root_per_process_in_time_order(tmp_path: Path):
    p = tree(tmp_path)
    path = tmp_path / "t.cpuprofile"
    path.write_bytes(convert(p, "cpuprofile"))
    harness.npm_package("@paulirish/trace_engine")
    seen = harness.run_node("devtools_cpuprofile.mjs", str(path))
    assert seen["errors"] == [] and seen["samples"] == sum(truth(p).values())
    assert {int(LABEL.fullmatch(r).group(1)) for r in seen["roots"]} == set(truth(p))
    doc = json.loads(path.read_bytes())
    assert all(d >= 0 for d in doc["timeDeltas"][1:])  # samples in time order
    assert roots_of(decode.cpuprofile(path.read_bytes()).roots) == truth(p)


def test_speedscope_app_shows_each_process_thread_in_time(tmp_path: Path):
    p = tree(tmp_path, samples=1500)
    data = convert(p, "speedscope")
    doc = json.loads(data)
    names = [prof["name"] for prof in doc["profiles"]]
    assert len(names) == 6
    assert all(re.fullmatch(r"process \d+: python3 app/service\.py / thread .*", n) for n in names)
    _, exported = import_into_speedscope(tmp_path, data, "t.speedscope.json")
    assert [prof["name"] for prof in exported["profiles"]] == names
    assert roots_of(decode.speedscope(data)[0].roots) == truth(p)


def test_go_pprof_splits_processes_by_root_and_by_label(tmp_path: Path):
    p = tree(tmp_path)
    path = tmp_path / "t.pb.gz"
    path.write_bytes(convert(p, "pprof"))
    want = truth(p)
    for pid, n in want.items():
        _, rows = go_top(path, "-symbolize=none", "-sample_index=samples", f"-tagfocus=pid={pid}")
        assert sum(r[0] for r in rows) == n, pid
    _, rows = go_top(path, "-symbolize=none", "-sample_index=samples", "-cum")
    cum = {r[2]: r for r in rows}
    assert len([k for k in cum if LABEL.fullmatch(k)]) == len(want)


# -- the commands -------------------------------------------------------------------------


def flamekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flamekit", *args], capture_output=True, text=True, timeout=120
    )


def test_info_lists_every_process_with_its_life(tmp_path: Path):
    p = tree(tmp_path)
    r = flamekit("info", "--json", str(p))
    assert r.returncode == 0, r.stderr
    procs = json.loads(r.stdout)["processes"]
    assert [x["pid"] for x in procs] == [4242, 4342, 4442]
    assert [x["ppid"] for x in procs] == [1, 4242, 4242]
    assert {x["python_version"] for x in procs} == {sys.version.split()[0]}
    assert procs[0]["start_s"] == -0.001 and procs[0]["how"] is None
    assert [x["how"] for x in procs[1:]] == ["exited", "exited"]
    assert {x["pid"]: x["samples"] for x in procs} == truth(p, idle=True)
    text = flamekit("info", str(p)).stdout
    assert "processes (3):" in text
    assert re.search(
        r"\n +4342 +4242 +\S+ +[\d,]+ +0\.000-[\d.]+ s exited \(status 0\): python3", text
    )


def test_top_per_process_and_over_the_tree(tmp_path: Path):
    p = tree(tmp_path)
    whole = flamekit("top", str(p))
    one = flamekit("top", str(p), "--pid", "4342")
    assert whole.returncode == one.returncode == 0, (whole.stderr, one.stderr)
    n = truth(p)
    assert f"{sum(n.values()):,} samples selected" in whole.stdout
    assert f"{n[4342]:,} samples selected" in one.stdout
    bad = flamekit("top", str(p), "--pid", "7")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "4342" in bad.stderr


def test_diff_matches_workers_by_role_not_pid(tmp_path: Path):
    """The same prefork program recorded twice, its processes under other pids the second
    time: roles match, so the diff of a run with its twin is flat, and it holds exactly
    two roles (the master; the workers, merged), not six pids."""
    a = tree(tmp_path, "a.fkt")
    b = tree(tmp_path, "b.fkt", first_pid=9000)
    assert {r.pid for r in load(b).runs}.isdisjoint({r.pid for r in load(a).runs})
    diff = build_diff(
        select(build_profile(load(a)), FilterOptions()),
        select(build_profile(load(b)), FilterOptions()),
    )
    assert {sk[0] for sk in diff.stacks} == {
        (PROCESS, "python3 app/service.py"),
        (PROCESS, "python3 app/service.py", "python3 app/service.py"),
    }
    assert all(ca == cb for ca, cb in diff.stacks.values())
    r = flamekit("diff", str(a), str(b), "--to", "difffolded", "-o", "-")
    assert r.returncode == 0, r.stderr
    roots = {line.split(";", 1)[0] for line in r.stdout.splitlines()}
    assert roots == {
        "process python3 app/service.py",
        "process python3 app/service.py > python3 app/service.py",
    }


def test_diff_of_a_tree_against_one_process_matches_its_role(tmp_path: Path):
    """One side a single process: it is rooted by role too, so it meets the tree's master
    rather than nothing."""
    single = tmp_path / "one.fkt"
    with open(single, "wb") as f:
        write_synthetic(f, samples=2000, stacks=80, threads=2, seed=3)
    sel_b = select(build_profile(load(single)), FilterOptions())
    diff = build_diff(select(build_profile(load(tree(tmp_path))), FilterOptions()), sel_b)
    master = (PROCESS, "python3 app/service.py")
    assert sum(cb for sk, (_, cb) in diff.stacks.items() if sk[0] == master) == len(sel_b)
    assert sum(ca for sk, (ca, _) in diff.stacks.items() if sk[0] == master) > 0
