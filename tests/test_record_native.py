"""record --native on real interpreters (3.8-3.14) running a test-built C extension:
the native stacks are recorded whole, through the extension loaded mid-recording, with
the C function between its Python caller and its Python callback, in the share of time
the target measured; and the unwinder agrees with gdb, frame by frame."""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from native_ext import build, collapsed
from pythons import Interpreter, recordable

from flamekit.record.proc.memory import ProcessMemory
from flamekit.record.proc.unwind import NativeUnwinder
from flamekit.trace import load

ROOT = Path(__file__).resolve().parent.parent
TARGET = str(ROOT / "tests" / "targets" / "native_spin.py")
#: objects that are C when a sample's frames inside the extension's function lie in them
C_SIDE = re.compile(r"spinext|/libc\.so|/libm\.so|\[vdso\]|/ld-linux")


def _ext(interp: Interpreter, tmp_path: Path) -> Path:
    try:
        return build(interp, tmp_path)
    except LookupError as exc:
        pytest.skip(str(exc))


def _symbol(path: str, name: str) -> tuple[int, int]:
    """(link-time start, size) of a function in an object's .symtab."""
    with open(path, "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym.name == name:
                return sym["st_value"], sym["st_size"]
    raise LookupError(name)


#: a sample this close to a transition the target logged is undecidable: the log's stamps
#: are taken a few microseconds inside each state (the callback's first and last lines;
#: the C side's call into and return from the interpreter around them)
MARGIN_NS = 50_000


def _transitions(log: dict) -> list[int]:
    """The target's transitions in order: entering the C function, then entering and
    leaving each callback, then leaving the C function."""
    entered, left = log["c"]
    return [entered, *log["callbacks"], left]


def _state_at(edges: list[int], t: int) -> str | None:
    """The target's state at monotonic instant ``t`` as its log has it, "C" or "Python";
    None outside the C function's call or within MARGIN_NS of a transition."""
    k = bisect.bisect_right(edges, t)
    if k == 0 or k == len(edges):
        return None
    if t - edges[k - 1] < MARGIN_NS or edges[k] - t < MARGIN_NS:
        return None
    return "C" if k % 2 else "Python"


@pytest.mark.parametrize("interp", recordable(), ids=str)
def test_native_stacks_hold_the_c_function_between_python_frames(interp, tmp_path):
    ext = _ext(interp, tmp_path)
    out = tmp_path / "n.fkt"
    log_path = tmp_path / "transitions.json"
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "-q", "--native", "-r", "500",
         "-o", str(out), "--", interp.path, TARGET, str(ext), "2", str(log_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # the wall-time share, for the messages only: the recorder's pauses inflate it
    wall_c = 1 - float(re.search(r"callback-share ([\d.]+)", r.stdout).group(1))
    log = json.loads(log_path.read_text())
    edges = _transitions(log)
    tr = load(out)
    assert tr.header.mode.get("native") is True
    origin = tr.header.start_monotonic_ns
    objects = tr.native_objects[tr.header.pid]
    so = next(o for o in objects if "spinext" in o.path)
    start, size = _symbol(next(p for p in ext.iterdir() if p.suffix == ".so").as_posix(),
                          "flamekit_spin_in_c")  # fmt: skip
    lo, hi = start + so.bias, start + so.bias + size

    # each object is recorded when it appeared, judged by the target's and the
    # recorder's own instants (not by a gap a loaded machine's start-up may shrink): the
    # extension, imported mid-recording (a dlopen), after the import began and by the
    # tick of the first stack in it; the objects there from the start by the first
    # native stack's tick (a record is stamped in the tick that saw it, after the
    # sample's instant, before the next sample's)
    def by_tick_of(first: int) -> float:
        return tr.times[first + 1] if first + 1 < len(tr) else float("inf")

    def first_stack(ok) -> int:
        return next(
            i for i in range(len(tr)) if tr.native[i] and ok(tr.native_stacks[tr.native[i]][0])
        )

    imported = log["import"] - origin
    by_c = by_tick_of(first_stack(lambda ips: any(lo <= ip < hi for ip in ips)))
    assert imported <= so.first_seen_ns < by_c, (imported, so.first_seen_ns, by_c)
    assert objects[0].first_seen_ns < by_tick_of(first_stack(lambda ips: True))

    def owner(ip: int) -> str:
        for o in objects:
            if any(a <= ip < b for a, b, _, _ in o.ranges):
                return o.path
        return "?"

    busy = in_c = whole = 0
    judged: dict[tuple[str, str | None], int] = {}  # (truth, sampled): samples
    for i in range(len(tr)):
        # the sample's instant: the recorder reads the clock once the target is stopped,
        # so the target's state then is the one its stack shows
        truth = _state_at(edges, origin + tr.times[i])
        if tr.is_idle(i) or tr.stacks.get(tr.columns.stack[i], ()) == ():
            if truth is not None:
                judged[truth, None] = judged.get((truth, None), 0) + 1
            continue
        ips, cut = tr.native_stacks.get(tr.native[i], ((), True))
        at = next((k for k, ip in enumerate(ips) if lo <= ip < hi), None)
        sampled = None
        if at is not None:
            busy += 1
            whole += not cut
            # the caller's side: the interpreter's frames outside it; C: nothing but the
            # extension and libc inside it; otherwise the thread is in the Python callback
            assert any(not C_SIDE.search(owner(ip)) for ip in ips[at + 1 :])
            sampled = "C" if all(C_SIDE.search(owner(ip)) for ip in ips[:at]) else "Python"
            in_c += sampled == "C"
        if truth is not None:
            judged[truth, sampled] = judged.get((truth, sampled), 0) + 1
    assert busy >= 300, busy
    assert whole / busy >= 0.97, (whole, busy)
    decidable = sum(judged.values())
    same = judged.get(("C", "C"), 0) + judged.get(("Python", "Python"), 0)
    truth_c = sum(n for (t, _), n in judged.items() if t == "C") / decidable
    figures = {"judged": judged, "busy": busy, "wall_c": wall_c, "truth_c": truth_c}
    # most samples are judged (the margins drop some 10-20%), nearly all as they were
    assert decidable >= 0.6 * busy, figures
    assert same / decidable >= 0.95, figures
    assert abs(in_c / busy - truth_c) <= 0.05, figures

    # Offline, merged: caller (Python) -> flamekit_spin_in_c [spinext...] -> callback
    # (Python) -> callback_inner (Python), each Python frame at its line, in that order:
    # on 3.11+ the callback's two frames run in one evaluation call and the caller's in
    # another, split where the recorder read the C entry; and the C function's own
    # share as the target's log has it, sample by sample.
    folded = collapsed(out, tmp_path / "n.txt")
    lines = _target_lines()
    through = c_side = 0
    shapes: dict[tuple[str, ...], int] = {}
    for line in folded.splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        if not any(f.startswith("flamekit_spin_in_c [spinext") for f in frames):
            continue
        through += int(n)
        # the Python frames and the extension's function, root first, with their lines
        seq = tuple(
            "C" if f.startswith("flamekit_spin_in_c [spinext") else f
            for f in frames
            if f.startswith("flamekit_spin_in_c [spinext") or "(native_spin.py:" in f
        )
        shapes[seq] = shapes.get(seq, 0) + int(n)
        if seq == lines["c"]:
            c_side += int(n)
    assert through >= 0.95 * busy
    wrong = {s: n for s, n in shapes.items() if not lines["ok"](s)}
    assert not wrong, (wrong, shapes)
    assert shapes.get(lines["inner"], 0) >= 0.2 * through, shapes  # it spins there
    assert abs(c_side / through - truth_c) <= 0.05, (c_side / through, figures)


def _target_lines() -> dict:
    """What a merged stack through the C function may read, root first (Python frames as
    ``name (native_spin.py:LINE)``, the C function as ``C``), from the target's source:
    ``c`` (in C), ``inner`` (spinning in callback_inner, called from callback's line)
    and ``ok``, a test of a whole sequence."""
    src = Path(TARGET).read_text().splitlines()

    def line_of(text: str) -> int:
        return next(i for i, ln in enumerate(src, 1) if ln.strip().startswith(text))

    def body(name: str) -> range:
        start = line_of(f"def {name}(")
        end = next(
            (i for i, ln in enumerate(src[start:], start + 1) if ln and not ln[0].isspace()),
            len(src) + 1,
        )
        return range(start, end)  # the def line too: a frame not started yet

    module = f"<module> (native_spin.py:{line_of('total, in_c = caller(')})"
    caller = f"caller (native_spin.py:{line_of('spinext.spin_in_c(')})"
    outer = f"callback (native_spin.py:{line_of('callback_inner(0.0001')})"
    c = (module, caller, "C")
    spin = body("callback_inner")
    callback_lines = body("callback")

    def ok(seq: tuple[str, ...]) -> bool:
        if seq[:3] != c:
            return False
        rest = seq[3:]
        if not rest:
            return True
        m = re.fullmatch(r"callback \(native_spin\.py:(\d+)\)", rest[0])
        if m is None or int(m.group(1)) not in callback_lines:
            return False
        if len(rest) == 1:
            return True
        m = re.fullmatch(r"callback_inner \(native_spin\.py:(\d+)\)", rest[1])
        return len(rest) == 2 and rest[0] == outer and m is not None and int(m.group(1)) in spin

    inner = (*c, outer, f"callback_inner (native_spin.py:{line_of('while time.perf_counter')})")
    return {"c": c, "inner": inner, "ok": ok}


def _gdb_pcs(pid: int) -> list[int]:
    script = (
        "python\nf = gdb.newest_frame()\nwhile f is not None:\n"
        "    if f.type() not in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME):\n        print('PC %d' % f.pc())\n    f = f.older()\nend\n"
    )
    r = subprocess.run(
        ["gdb", "-nx", "-batch", "-p", str(pid), "-ex", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return [int(m) for m in re.findall(r"^PC (\d+)$", r.stdout, re.M)]


def _stopped(pid: int) -> None:
    for _ in range(200):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in "tT":
                return
        time.sleep(0.005)
    raise AssertionError("target did not stop")


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_unwinder_agrees_with_gdb_on_20_stopped_points(tmp_path):
    """At 20 points of a target in and out of the C extension, our unwind of its stopped
    thread is gdb's backtrace, address for address (gdb: the return addresses it unwinds
    to, with its own DWARF unwinder and the objects' debug info; its inline frames and
    the tail-call frames it infers from DWARF call sites are not on the stack, so they
    are left out)."""
    from ptrace.binding.func import ptrace_attach, ptrace_detach

    interp = next(i for i in recordable() if i.id == "3.12")
    ext = _ext(interp, tmp_path)
    p = subprocess.Popen([interp.path, TARGET, str(ext), "600"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.6)
        mem = ProcessMemory(p.pid)
        unwinder = NativeUnwinder(p.pid, mem)
        agreed = 0
        for _ in range(20):
            time.sleep(0.03)
            os.kill(p.pid, signal.SIGSTOP)
            _stopped(p.pid)
            ptrace_attach(p.pid)
            os.waitpid(p.pid, 0x40000000)  # __WALL
            got = unwinder.unwind(p.pid)
            ptrace_detach(p.pid, signal.SIGSTOP)  # stays stopped for gdb
            _stopped(p.pid)
            want = _gdb_pcs(p.pid)
            os.kill(p.pid, signal.SIGSTOP)  # gdb's detach may have let it run: where it was
            os.kill(p.pid, signal.SIGCONT)
            assert got is not None
            ips, cut = got
            assert not cut
            assert list(ips) == want, [hex(x) for x in ips]
            agreed += 1
        assert agreed == 20
    finally:
        p.kill()
        p.wait()


def test_native_with_nonblocking_is_one_usage_line():
    r = subprocess.run(
        [sys.executable, "-m", "flamekit", "record", "--native", "--nonblocking", "-o",
         os.devnull, "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "flamekit: error: --native cannot be used with --nonblocking: a running thread's "
        "registers and stack cannot be read consistently"
    ]


def test_dump_native_prints_the_c_function_between_python_frames(tmp_path):
    """dump --native: the merged stack, innermost first, native frames marked as such;
    with --nonblocking, one usage line."""
    import json

    interp = next(i for i in recordable() if i.id == "3.12")
    ext = _ext(interp, tmp_path)
    p = subprocess.Popen([interp.path, TARGET, str(ext), "600"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # started, imported, in the C function
        seen_callback = False
        for _ in range(8):
            r = subprocess.run(
                [sys.executable, "-m", "flamekit", "dump", "--native", "--json", "-p",
                 str(p.pid)],
                capture_output=True, text=True, timeout=60, cwd=ROOT,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
            frames = json.loads(r.stdout)["threads"][0]["frames"]
            names = [f["function"] for f in frames]
            native = {f["function"] for f in frames if f.get("native")}
            assert "flamekit_spin_in_c" in names, frames
            at = names.index("flamekit_spin_in_c")
            assert "flamekit_spin_in_c" in native and "caller" not in native
            assert "caller" in names[at:] and "callback" not in names[at:]
            seen_callback |= "callback" in names[:at]
            assert frames[-1]["function"] == "_start" and frames[-1]["native"]
        assert seen_callback  # about half the time the thread is in it: 8 looks
        r = subprocess.run(
            [sys.executable, "-m", "flamekit", "dump", "--native", "--nonblocking", "-p",
             str(p.pid)],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert r.returncode == 2 and "--native cannot be used with --nonblocking" in r.stderr
    finally:
        p.kill()
        p.wait()


#: The recorder with each unwind outlasting the bound: the unwind reads the stopped
#: thread whole, then the bound fires (its SIGALRM handler runs in the sleep) and lets
#: the target go before the unwind returns, as a bound firing midway through it would.
SLOW_UNWIND = """
import sys, time
from flamekit.record.proc.unwind import NativeUnwinder
real = NativeUnwinder.unwind
def unwind(self, tid):
    got = real(self, tid)
    time.sleep(SLEEP_S)
    return got
NativeUnwinder.unwind = unwind
from flamekit.cli import main
main()
"""


@pytest.mark.parametrize(
    "where, max_pause_ms",
    [("walk", 0.01), ("unwind", 2.0)],
)
def test_a_pause_cut_by_the_bound_keeps_no_native_stack(tmp_path, where, max_pause_ms):
    """A pause the bound lets go before its reads end keeps no native stack: one read
    from a running thread could mix two moments (Python stacks are read as --nonblocking
    reads them). ``walk``: --max-pause 0.01 ms, the bound fires during the walk, before
    the unwind, whose register reads then fail. ``unwind``: every unwind made to outlast
    a 2 ms bound (SLOW_UNWIND), the walk done before it (or cut, as above); the stack
    read is whole, but the target was let go before the unwind returned, which the
    recorder cannot tell from a bound firing midway through it: it must drop it
    (run_sampler.tick's check; without it, 184 of 184 samples kept one)."""
    interp = next(i for i in recordable() if i.id == "3.12")
    ext = _ext(interp, tmp_path)
    out = tmp_path / "cut.fkt"
    recorder = [sys.executable, "-m", "flamekit"]
    if where == "unwind":
        recorder = [
            sys.executable,
            "-c",
            SLOW_UNWIND.replace("SLEEP_S", str(3 * max_pause_ms / 1e3)),
        ]
    r = subprocess.run(
        [*recorder, "record", "-q", "--native", "-r", "200", "--max-pause",
         str(max_pause_ms), "-o", str(out), "--", interp.path, TARGET, str(ext), "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tr = load(out)
    assert len(tr) >= 50 and tr.end is not None and tr.end.cut_pauses >= 0.9 * len(tr)
    # native stacks come only from the ticks the bound did not cut. A tick of this one
    # thread writes its sample, or a sampling error (its reads torn), or, the last one,
    # nothing when the target exits in it: a cut tick need not have a sample (20 runs
    # beside two CPU hogs: 263 samples, 3 errors, 266 cut; 258, 0 errors, 259 cut)
    uncut = len(tr) + tr.end.errors + 1 - tr.end.cut_pauses
    assert sum(1 for n in tr.native if n) <= uncut, (len(tr), tr.end)
