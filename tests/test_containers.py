"""A target in a container: its own PID and mount namespace, made by the tests with
``unshare --pid --mount --fork --mount-proc``, running a copy of the interpreter (and its
libpython) on a tmpfs mounted inside, which nothing outside the container sees.

From the host, ``dump`` and ``record -p HOSTPID`` must show record_known.py's stacks,
lines, names and idle states (tests/test_record_e2e.py) under the thread ids the host
has for them (its /proc/HOSTPID/task), with the container's own ids kept in the trace
(THREAD ``ns_tid``); the interpreter is read through the container's mount namespace,
with and without CAP_SYS_ADMIN (which /proc/PID/map_files needs). Run inside the
container (``nsenter``, as ``docker exec`` does), flamekit sees the container's ids, and
nothing to translate.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pythons import Interpreter
from test_dump import check_json
from test_record_e2e import (
    BY_ID,
    INTERPRETERS,
    KNOWN,
    PARALLEL,
    RATE,
    SHORT_S,
    Run,
    check_known_trace,
    flamekit_argv,
    kill,
    ok,
    proc_state,
    run_to_end,
    text,
    wait_ready,
)

from flamekit.record.proc import pid_namespace
from flamekit.record.target import open_target
from flamekit.record.walk import StackWalker
from flamekit.trace import load
from flamekit.trace import records as R

HERE = Path(__file__).resolve().parent
WAVES = HERE / "targets" / "thread_waves.py"
UNSHARE = ["unshare", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child"]
#: Capabilities /proc/PID/map_files needs (CAP_CHECKPOINT_RESTORE since Linux 5.9): without
#: them the recorder reads the target's files through /proc/PID/root.
NO_MAP_FILES = [
    "setpriv",
    "--inh-caps=-sys_admin,-checkpoint_restore",
    "--bounding-set=-sys_admin,-checkpoint_restore",
    "--",
]


def libpython(interp: Interpreter) -> list[str]:
    """The libpython the interpreter loads (none for a static build)."""
    out = subprocess.run(["ldd", interp.path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"libpython\S* => (\S+)", out)


def python_home(interp: Interpreter) -> str:
    code = "import sys; print(sys.prefix + ':' + sys.exec_prefix)"
    return subprocess.run(
        [interp.path, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def host_tids(pid: int) -> dict[int, int]:
    """The container's id of each thread of host process ``pid`` -> the host's."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{name}/status").read_bytes()  # names: any bytes
        (line,) = [x for x in status.splitlines() if x.startswith(b"NSpid:")]
        out[int(line.split()[-1])] = int(name)
    return out


class Container:
    """``argv`` run by a copy of ``interp`` at ``<tmp>/private/python``, on a tmpfs that
    only the container's mount namespace has; the container's pid 1. ``pid`` is the
    host's pid of it."""

    def __init__(self, interp: Interpreter, tmp: Path, argv: list[str], ready: Path) -> None:
        self.private = tmp / "private"
        self.private.mkdir()
        self.python = str(self.private / "python")
        p = shlex.quote(str(self.private))
        steps = [f"mount -t tmpfs flamekit-test {p}", f"mkdir {p}/lib"]
        steps.append(f"cp {shlex.quote(interp.path)} {p}/python")
        steps += [f"cp {shlex.quote(lib)} {p}/lib/" for lib in libpython(interp)]
        home = shlex.quote(python_home(interp))
        run_it = f"LD_LIBRARY_PATH={p}/lib PYTHONHOME={home} exec {p}/python"
        script = " && ".join([*steps, f"{run_it} {shlex.join(argv)}"])
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*UNSHARE, "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=self.err
        )
        try:
            self.info = wait_ready(ready, lambda: self.proc.poll() is None, what="the container")
            self.pid = self._child()
        except AssertionError as exc:
            said = self.stderr()
            self.close()
            raise AssertionError(f"{exc}; it said: {said}") from None
        except BaseException:
            self.close()
            raise

    def _child(self) -> int:
        """The host pid of unshare's child: the container's pid 1, our interpreter."""
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    stat = Path(f"/proc/{name}/stat").read_bytes()
                except OSError:
                    continue
                if int(stat[stat.rfind(b")") + 2 :].split()[1]) == self.proc.pid:
                    return int(name)
        raise AssertionError("the container's first process is gone")

    def stderr(self) -> str:
        self.err.seek(0)
        return text(self.err.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            kill(self.proc.pid)  # --kill-child takes the container with it
        self.proc.wait()
        self.err.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_view(info: dict, tids: dict[int, int], pid: int) -> dict:
    """record_known.py's ready file as the host sees it: its pid and thread ids."""
    threads = [{**t, "native_id": tids[t["native_id"]]} for t in info["threads"]]
    return {**info, "pid": pid, "threads": threads}


# -- one container per interpreter, a few at once -----------------------------------------


def _record_and_dump(run: Run) -> Run:
    """Dump and record record_known.py in a container: from the host, from the host
    without CAP_SYS_ADMIN, and from inside."""
    tmp, interp = run.tmp, run.interp
    ready = tmp / "ready.json"
    record = ["record", "-q", "-r", RATE, "-d", str(SHORT_S)]
    try:
        with Container(interp, tmp, [str(KNOWN), str(ready), "60"], ready) as box:
            pid = box.pid
            deadline = time.monotonic() + 10
            while proc_state(pid) != "S" and time.monotonic() < deadline:
                time.sleep(0.01)  # the main thread writes the ready file, then sleeps
            r = run.results
            r["info"], r["pid"], r["python"] = box.info, pid, box.python
            r["tids"] = host_tids(pid)
            r["visible"] = os.path.exists(box.python)
            r["exe"] = os.readlink(f"/proc/{pid}/exe")
            r["maps"] = Path(f"/proc/{pid}/maps").read_text()
            r["dump"] = run_to_end(
                flamekit_argv("dump", "--json", "--full-filenames", "-p", str(pid)), tmp
            )
            r["record"] = run_to_end(
                flamekit_argv(*record, "-o", str(tmp / "host.fkt"), "-p", str(pid)), tmp
            )
            r["no_admin"] = run_to_end(
                NO_MAP_FILES + flamekit_argv(*record, "-o", str(tmp / "root.fkt"), "-p", str(pid)),
                tmp,
            )
            r["map_files_denied"] = run_to_end(
                NO_MAP_FILES + [sys.executable, "-c", OPEN_MAP_FILES, str(pid), box.python], tmp
            )
            inside = ["nsenter", "--target", str(pid), "--pid", "--mount", "--"]
            r["dump_inside"] = run_to_end(
                inside + flamekit_argv("dump", "--json", "--full-filenames", "-p", "1"), tmp
            )
            r["record_inside"] = run_to_end(
                inside + flamekit_argv(*record, "-o", str(tmp / "inside.fkt"), "-p", "1"), tmp
            )
            r["state_after"] = proc_state(pid)
    except BaseException as exc:
        run.error = exc
    return run


#: Opens the map_files entry of the interpreter's mapping: prints how that went.
OPEN_MAP_FILES = """
import sys
pid, path = sys.argv[1], sys.argv[2]
for line in open(f"/proc/{pid}/maps"):
    if line.rstrip().endswith(path):
        try:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            open(f"/proc/{pid}/map_files/{lo:x}-{hi:x}", "rb").close()
            print("opened")
        except PermissionError:
            print("denied")
        break
"""


@pytest.fixture(scope="module")
def boxes() -> Iterator[dict[str, Run]]:
    tmp = Path(tempfile.mkdtemp(prefix="flamekit-containers-"))
    try:
        todo = []
        for interp in INTERPRETERS:
            (tmp / interp.id).mkdir()
            todo.append(Run(interp, tmp / interp.id))
        with ThreadPoolExecutor(PARALLEL) as pool:
            yield {b.interp.id: b for b in pool.map(_record_and_dump, todo)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


interpreters = pytest.mark.parametrize("iid", [i.id for i in INTERPRETERS])


@interpreters
def test_the_interpreter_exists_only_in_the_container(boxes: dict[str, Run], iid: str) -> None:
    """The premise of the tests below: what the target runs is nowhere outside."""
    box = boxes[iid]
    python = box.get("python")
    assert box.get("info")["pid"] == 1, "the target is not its own PID namespace's first"
    assert not box.get("visible"), f"{python} can be seen from the host"
    assert box.get("exe") == python
    mapped = {line.split()[-1] for line in box.get("maps").splitlines() if "/" in line}
    assert python in mapped
    for lib in libpython(box.interp):  # the libpython mapped is the copy on the tmpfs
        assert str(Path(python).parent / "lib" / Path(lib).name) in mapped, mapped
        assert lib not in mapped
    tids = box.get("tids")
    assert all(ns != host for ns, host in tids.items()), tids
    assert len(tids) == len(box.get("info")["threads"]), tids


@interpreters
def test_dump_from_the_host(boxes: dict[str, Run], iid: str) -> None:
    """Stacks, lines, names, idle states and GIL, under the host's thread ids."""
    box = boxes[iid]
    doc = json.loads(ok(box.get("dump"), f"dump from the host ({iid})"))
    info = host_view(box.get("info"), box.get("tids"), box.get("pid"))
    argv = [box.get("python"), str(KNOWN), str(box.tmp / "ready.json"), "60"]
    check_json(doc, info, argv, iid, "dump from the host")


@interpreters
def test_record_from_the_host(boxes: dict[str, Run], iid: str) -> None:
    """Every sample exact, the host's ids in the trace and the container's beside them."""
    box = boxes[iid]
    ok(box.get("record"), f"record -p from the host ({iid})")
    trace = load(box.tmp / "host.fkt")
    pid, tids = box.get("pid"), box.get("tids")
    # written as the current format, which has the container's own ids (ns_tid, FKT 1.2)
    assert trace.header.pid == pid
    assert trace.header.format_version == (R.FORMAT_MAJOR, R.FORMAT_MINOR) >= (1, 2)
    check_known_trace(trace, host_view(box.get("info"), tids, pid), BY_ID[iid].version)
    ns_of = {host: ns for ns, host in tids.items()}
    threads = [t for t in trace.threads.values() if t.native_tid in ns_of]
    assert len(threads) == len(box.get("info")["threads"]), trace.threads
    for t in threads:
        assert t.ns_tid == ns_of[t.native_tid], t
    shown = subprocess.run(
        [sys.executable, "-m", "flamekit", "info", "--json", str(box.tmp / "host.fkt")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for t in json.loads(shown)["threads"]:
        assert t["ns_tid"] == ns_of.get(t["tid"]), t
    assert box.get("state_after") not in ("", "t", "T", "Z")


@interpreters
def test_record_from_the_host_without_map_files(boxes: dict[str, Run], iid: str) -> None:
    """Without CAP_SYS_ADMIN the interpreter is read through /proc/PID/root, the
    container's own view of its files: the same recording."""
    box = boxes[iid]
    tried = box.get("map_files_denied")
    assert text(tried.stdout).strip() == "denied", (
        "the recorder could open /proc/PID/map_files (this would not test /proc/PID/root): "
        + text(tried.stdout + tried.stderr)
    )
    ok(box.get("no_admin"), f"record -p without CAP_SYS_ADMIN ({iid})")
    trace = load(box.tmp / "root.fkt")
    info = host_view(box.get("info"), box.get("tids"), box.get("pid"))
    check_known_trace(trace, info, BY_ID[iid].version)


@interpreters
def test_dump_and_record_inside_the_container(boxes: dict[str, Run], iid: str) -> None:
    """flamekit in the target's namespaces sees the container's ids: nothing to
    translate, and no ns_tid written."""
    box = boxes[iid]
    info = box.get("info")
    doc = json.loads(ok(box.get("dump_inside"), f"dump inside the container ({iid})"))
    argv = [box.get("python"), str(KNOWN), str(box.tmp / "ready.json"), "60"]
    check_json(doc, info, argv, iid, "dump inside the container")
    ok(box.get("record_inside"), f"record inside the container ({iid})")
    trace = load(box.tmp / "inside.fkt")
    assert trace.header.pid == 1
    check_known_trace(trace, info, BY_ID[iid].version)
    assert all(t.ns_tid is None for t in trace.threads.values()), trace.threads


# -- the translation's cost and its threads ------------------------------------------------


@pytest.mark.parametrize("iid", ["3.10", "3.12"])
def test_each_thread_is_translated_once(
    tmp_path: Path, iid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walker asks for a thread's host id once, not every sample (3.10: through the
    struct pthread; 3.12: the thread state's own id)."""
    ready = tmp_path / "ready.json"
    with Container(BY_ID[iid], tmp_path, [str(KNOWN), str(ready), "60"], ready) as box:
        target = open_target(box.pid)
        try:
            assert target.tids.nested
            asked: list[int] = []
            host = target.tids.host

            def counted(tid: int) -> int | None:
                asked.append(tid)
                return host(tid)

            monkeypatch.setattr(target.tids, "host", counted)
            walker = StackWalker(target)
            for _ in range(50):
                stacks = walker.walk()
        finally:
            target.close()
        tids = host_tids(box.pid)
    assert {s.native_tid for s in stacks} == set(tids.values())
    assert sorted(asked) == sorted(tids), asked


@pytest.mark.parametrize("interp", INTERPRETERS, ids=str)
def test_short_threads_in_a_container(tmp_path: Path, interp: Interpreter) -> None:
    """10 waves of 4 short threads (each reusing a dead one's pthread_t, often its thread
    state): each recorded thread's host id is its own, shown by the container's id the
    trace gives it (read from the host id's /proc entry), which the thread logged."""
    ready, go, log = tmp_path / "ready", tmp_path / "go", tmp_path / "waves.log"
    script = (
        "import os, runpy, sys, time\n"
        "open(sys.argv[1] + '.tmp', 'w').write('{}')\n"
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.005)\n"
        "sys.argv = [sys.argv[3], sys.argv[4]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    argv = ["-c", script, str(ready), str(go), str(WAVES), str(log)]
    with Container(interp, tmp_path, argv, ready) as box:
        out, err = tmp_path / "waves.fkt", tmp_path / "record.err"
        with err.open("wb") as err_file:
            rec = subprocess.Popen(
                flamekit_argv("record", "-q", "-r", "1000", "-o", str(out), "-p", str(box.pid)),
                stderr=err_file,
            )
        deadline = time.monotonic() + 30
        while not traced(box.pid) and time.monotonic() < deadline:
            assert rec.poll() is None, err.read_text()
            time.sleep(0.01)
        go.touch()
        assert rec.wait(timeout=60) == 0, err.read_text()
    truth = {int(tid): name for name, tid in (line.split() for line in log.open())}
    assert len(truth) == 40
    trace = load(out)
    assert trace.end is not None and trace.end.reason == "target-exited", trace.end
    workers = [t for t in trace.threads.values() if t.ns_tid != 1]  # 1: the main thread
    assert len(workers) >= 30, f"{len(workers)} of 40 threads recorded"
    for t in workers:
        assert t.ns_tid in truth, t  # none under a dead thread's host id, or none at all
        assert t.name is None or t.name == truth[t.ns_tid], t
        assert t.native_tid is not None and t.native_tid != t.ns_tid, t
    hosts = [t.native_tid for t in trace.threads.values()]
    assert len(set(hosts)) == len(hosts), hosts


def traced(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return re.search(r"^TracerPid:\s*[1-9]", status, re.M) is not None


# -- the namespace ids' parsing -----------------------------------------------------------


def test_a_process_of_our_namespace_is_not_translated() -> None:
    tids = pid_namespace.HostTids(os.getpid())
    assert not tids.nested
    assert tids.host(os.getpid()) == os.getpid() and tids.ns_tid(os.getpid()) is None
    assert tids.host(1 << 30) is None
