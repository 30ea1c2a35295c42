"""``flamekit dump -p PID`` end to end, on every interpreter (2.7 and 3.6+): text and --json.

The target is tests/targets/record_known.py (see tests/test_record_e2e.py): four named
threads, each parked on a known line for the target's whole life. One dump must list
every thread with its name, idle or active, the GIL holder, and each frame as
``function (file:line)`` exactly as the source's MARK comments give it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_record_e2e import (
    BY_ID,
    INTERPRETERS,
    NOBODY,
    PARALLEL,
    RECORDED,
    Frame,
    Started,
    check_stack,
    expected_threads,
    flamekit,
    flamekit_argv,
    gone_pid,
    known_argv,
    one_error_line,
    proc_state,
    some,
    text,
)


def dump_all(interp_id: str, tmp: Path) -> dict[str, object]:
    """A parked record_known.py dumped as text, as JSON, and as JSON without pausing."""
    interp = BY_ID[interp_id]
    ready = tmp / "ready.json"
    out: dict[str, object] = {}
    try:
        with Started(known_argv(interp, ready), ready) as target:
            # The main thread writes the ready file just before its last call (sleep).
            deadline = time.monotonic() + 10
            while proc_state(target.pid) != "S" and time.monotonic() < deadline:
                time.sleep(0.01)
            out["info"] = target.info
            out["argv"] = known_argv(interp, ready)
            for key, opts in (  # whole file names: the stacks are checked to the path
                ("text", ["--full-filenames"]),
                ("json", ["--json", "--full-filenames"]),
                ("nb", ["--json", "--nonblocking", "--full-filenames"]),
                ("short", ["--json"]),
            ):
                out[key] = flamekit("dump", "-p", str(target.pid), *opts)
            out["state_after"] = proc_state(target.pid)
    except BaseException as exc:
        out["error"] = exc
    return out


@pytest.fixture(scope="module")
def dumps() -> Iterator[dict[str, dict[str, object]]]:
    tmp = Path(tempfile.mkdtemp(prefix="flamekit-dump-"))
    try:
        ids = [i.id for i in RECORDED]
        dirs = []
        for iid in ids:
            (tmp / iid).mkdir()
            dirs.append(tmp / iid)
        with ThreadPoolExecutor(PARALLEL) as pool:
            yield dict(zip(ids, pool.map(dump_all, ids, dirs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def get(dumps: dict[str, dict[str, object]], iid: str, key: str):
    d = dumps[iid]
    if "error" in d:
        raise AssertionError(f"dumping on {iid} failed") from d["error"]  # type: ignore[misc]
    return d[key]


def ok_out(r: subprocess.CompletedProcess, what: str) -> str:
    err = text(r.stderr)
    assert r.returncode == 0, f"{what} failed (exit {r.returncode}): {err}"
    assert err == "", err  # no warning, no traceback: the stacks go to stdout alone
    return r.stdout.decode("utf-8")


THREAD_LINE = re.compile(
    r'Thread (\d+) \(python id (0x[0-9a-f]+), (idle|active)(\+gil)?\):(?: "(.*)")?'
)
FRAME_LINE = re.compile(r"    (.+) \((.+):(\d+)\)")

interpreters = pytest.mark.parametrize("iid", [i.id for i in RECORDED])


@interpreters
def test_text(dumps: dict[str, dict[str, object]], iid: str) -> None:
    info, argv = get(dumps, iid, "info"), get(dumps, iid, "argv")
    out = ok_out(get(dumps, iid, "text"), f"flamekit dump on {iid}")
    blocks = out.split("\n\n")
    head = blocks[0].splitlines()
    assert head[0] == f"Process {info['pid']}: {' '.join(argv)}", head
    assert re.fullmatch(r"Python {}\.{}\.\d+\S*".format(*BY_ID[iid].version), head[1]), head
    expected = expected_threads(BY_ID[iid].version)
    by_native = {t["native_id"]: t for t in info["threads"]}
    seen = set()
    for block in blocks[1:]:
        lines = block.splitlines()
        m = THREAD_LINE.fullmatch(lines[0])
        assert m, lines[0]
        tid, ident, state, gil, name = m.groups()
        want = by_native[int(tid)]
        assert int(ident, 16) == want["ident"] and name == want["name"], (lines[0], want)
        exp = expected[name]
        assert state == ("idle" if exp.idle else "active"), lines[0]
        assert bool(gil) == exp.gil or exp.gil_gaps and not gil, lines[0]
        frames = []
        for line in lines[1:]:
            f = FRAME_LINE.fullmatch(line)
            assert f, f"not a frame line: {line!r}"
            frames.append(Frame(f.group(1), f.group(2), int(f.group(3))))
        check_stack(frames, exp, f"{name} (dump, {iid})")
        seen.add(name)
    assert seen == set(expected), seen


def check_json(doc: dict, info: dict, argv: list[str], iid: str, what: str) -> None:
    assert doc["pid"] == info["pid"]
    assert doc["cmdline"] == argv
    assert doc["python_version"].startswith("{}.{}.".format(*BY_ID[iid].version))
    expected = expected_threads(BY_ID[iid].version)
    by_native = {t["native_id"]: t for t in info["threads"]}
    seen = set()
    for t in doc["threads"]:
        want = by_native[t["native_tid"]]
        assert t["thread_id"] == want["ident"] and t["name"] == want["name"], (t, want)
        exp = expected[t["name"]]
        flags = (t["idle"], t["holds_gil"])
        assert flags == (exp.idle, exp.gil) or exp.gil_gaps and flags == (exp.idle, False), t
        assert t["error"] is None, t
        frames = [Frame(f["function"], f["file"], f["line"]) for f in t["frames"]]
        check_stack(frames, exp, f"{t['name']} ({what}, {iid})")
        seen.add(t["name"])
    assert seen == set(expected) and len(doc["threads"]) == len(expected), seen


@interpreters
def test_json(dumps: dict[str, dict[str, object]], iid: str) -> None:
    info, argv = get(dumps, iid, "info"), get(dumps, iid, "argv")
    doc = json.loads(ok_out(get(dumps, iid, "json"), f"flamekit dump --json on {iid}"))
    check_json(doc, info, argv, iid, "dump --json")


@interpreters
def test_json_nonblocking(dumps: dict[str, dict[str, object]], iid: str) -> None:
    info, argv = get(dumps, iid, "info"), get(dumps, iid, "argv")
    r = get(dumps, iid, "nb")
    doc = json.loads(ok_out(r, f"flamekit dump --json --nonblocking on {iid}"))
    check_json(doc, info, argv, iid, "dump --nonblocking")


@interpreters
def test_files_are_shown_relative_to_their_import_roots(
    dumps: dict[str, dict[str, object]], iid: str
) -> None:
    """By default the same parked stacks show the script's files relative to its own
    directory and the standard library's relative to lib/pythonX.Y; the rest as is."""
    argv = get(dumps, iid, "argv")
    script_dir = os.path.dirname(argv[1]) + "/"
    whole = json.loads(ok_out(get(dumps, iid, "json"), f"flamekit dump --json on {iid}"))
    short = json.loads(ok_out(get(dumps, iid, "short"), f"flamekit dump --json on {iid}"))
    pairs = [(f, s) for tw, ts in zip(whole["threads"], short["threads"])
             for f, s in zip(tw["frames"], ts["frames"], strict=True)]  # fmt: skip
    shortened = 0
    for f, s in pairs:
        assert (s["function"], s["line"]) == (f["function"], f["line"]), (f, s)
        stdlib = re.match(r".*/lib/python\d\.\d+t?/", f["file"])
        if f["file"].startswith(script_dir):
            assert s["file"] == f["file"][len(script_dir) :], (f, s)
        elif stdlib:
            assert s["file"] == f["file"][stdlib.end() :], (f, s)
        else:
            assert s["file"] == f["file"], (f, s)
        shortened += s["file"] != f["file"]
    assert any(s["file"] == os.path.basename(argv[1]) for _, s in pairs), pairs
    assert shortened, pairs


@interpreters
def test_target_keeps_running(dumps: dict[str, dict[str, object]], iid: str) -> None:
    assert get(dumps, iid, "state_after") not in ("", "t", "T", "Z")


# -- bad input ----------------------------------------------------------------------------


def test_no_such_pid() -> None:
    pid = gone_pid()
    line = one_error_line(flamekit("dump", "-p", str(pid)), 1)
    assert f"no process with pid {pid}" in line, line


def test_not_a_python_process() -> None:
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        line = one_error_line(flamekit("dump", "-p", str(sleeper.pid)), 1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "not a CPython process" in line and "pgrep" in line, line


def test_permission_denied(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    with Started(known_argv(INTERPRETERS[-1], ready), ready) as target:
        r = subprocess.run(
            [*NOBODY, *flamekit_argv("dump", "-p", str(target.pid))],
            capture_output=True,
            cwd=tempfile.gettempdir(),
            timeout=60,
        )
        assert proc_state(target.pid) not in ("", "t", "T")
    line = one_error_line(r, 1)
    assert "permission denied" in line and "root" in line, line


@pytest.mark.parametrize("args", [[], ["-p", "abc"], ["-p", "-3"]], ids=["no-pid", "word", "neg"])
def test_usage_errors(args: list[str]) -> None:
    line = one_error_line(flamekit("dump", *args), 2)
    assert "-p" in line or "pid" in line, line


def test_output_to_a_closed_pipe(tmp_path: Path) -> None:
    """``flamekit dump | head -1``: no traceback when the reader goes away."""
    ready = tmp_path / "ready.json"
    with Started(known_argv(INTERPRETERS[-1], ready), ready) as target:
        p = subprocess.run(
            f"{' '.join(flamekit_argv('dump', '-p', str(target.pid)))} | head -c 10",
            shell=True,
            capture_output=True,
            timeout=60,
            executable="/bin/bash",
        )
    assert p.stdout.startswith(b"Process ")
    assert b"Traceback" not in p.stderr, p.stderr


HOSTILE = r"""
import sys, threading, time
title, clear = "\x1b]0;owned\x07", "\x1b[2J"
def spin():
    while True:
        time.sleep(0.001)
code = spin.__code__
fields = {"co_name": "spin" + title + clear, "co_filename": "/tmp/x" + clear + "\n.py"}
if sys.version_info >= (3, 11):
    fields["co_qualname"] = fields["co_name"]
spin.__code__ = code.replace(**fields)
threading.Thread(target=spin, name="worker" + title + "\nfake line").start()
print("ready", flush=True)
spin()
"""


def test_names_from_the_target_never_reach_the_terminal_raw() -> None:
    """A target chooses its function, file and thread names: dump shows them escaped,
    the way info, top and diff do (an ESC]0; title and a clear-screen went through)."""
    proc = subprocess.Popen([some((3, 12)).path, "-c", HOSTILE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        r = subprocess.run(
            [sys.executable, "-m", "flamekit", "dump", "-p", str(proc.pid)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout
        assert "spin\\x1b]0;owned\\x07\\x1b[2J (/tmp/x\\x1b[2J\\x0a.py:" in r.stdout
        assert '"worker\\x1b]0;owned\\x07\\x0afake line"' in r.stdout
        assert not [line for line in r.stdout.splitlines() if line.startswith("fake line")]
    finally:
        proc.kill()
        proc.wait()
