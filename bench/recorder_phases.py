"""Where a recorder tick's CPU goes, step by step, and the floor under it.

Runs flamekit's Recorder in this process on the 50-deep CPU-bound target and charges
each step of the sampling loop (pause, walk, code checks, writer, ...) the CPU time of
this thread spent in it (``time.thread_time_ns``, about 1 us a call, so each step's figure
includes a little of that). Steps nest: ``_tick`` contains the walk, the code checks and
the writer. ``--bare`` runs the loop unwrapped, for the total alone.

``--floor`` measures what no Python recorder of this design can go below on this
machine: a loop on the same schedule (``--rate``, 1 kHz by default) that only sleeps, then
one that also makes the tick's two unavoidable system calls (one ``process_vm_readv`` of
what the walker reads, one ``pread`` of the thread's /proc stat), and the same calls back
to back with no sleep; then a whole walk after each sleep and back to back. The
differences are what waking up costs the work that follows (cold caches, and on a VM the
vCPU's own wake-up), which grows with the time asleep: compare ``--rate 100``. Last, the
same calls in a compiled loop (``bench/floor_loop.c``, built with the system's ``cc``;
bench-only, flamekit has no compiled code): what the tick would cost with no interpreter
around the calls, the floor of any recorder of this design on this machine.

Usage::

    python bench/recorder_phases.py                       # 3.12, pausing, 5 s
    python bench/recorder_phases.py --nonblocking --python 3.8 --seconds 3
    python bench/recorder_phases.py --floor
    python bench/recorder_phases.py --floor --rate 100
    python bench/recorder_phases.py --deep 3000 --python 3.12   # deep stacks: a walk's CPU

``--deep N`` measures the walk alone on the target N frames deep: 100 walks back to back,
each with the target paused (so every walk reads a consistent stack), CPU a walk with the
pause, and how many thread walks reused the part of the stack in older data-stack chunks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as bench  # noqa: E402

from flamekit.record import sampler, session, walk  # noqa: E402
from flamekit.record.proc import idle, pause  # noqa: E402

#: (owner, method) pairs charged separately; names as they appear in the output.
STEPS = [
    (pause.Pauser, "pause"),
    (pause.Pauser, "resume"),
    (pause.Pauser, "service"),
    (sampler.Recorder, "_tick"),
    (sampler.Recorder, "_check_codes"),
    (sampler.Recorder, "_write_samples"),
    (sampler.Recorder, "_interrupted"),
    (sampler.Recorder, "_wait_nonblocking"),
    (walk.StackWalker, "walk"),
    (idle.ThreadStates, "running"),
]


def start_target(python: str, depth: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [python, str(bench.DEEP), "--depth", str(depth), "--max-seconds", "120"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # {"ready": pid}
    return proc


def charge(cpu: Counter, calls: Counter) -> None:
    """Wrap every step so it adds its thread CPU time to ``cpu``."""
    for owner, name in STEPS:
        inner = getattr(owner, name)
        label = f"{owner.__name__}.{name}"

        def wrapped(*a, _inner=inner, _label=label, **k):
            t0 = time.thread_time_ns()
            try:
                return _inner(*a, **k)
            finally:
                cpu[_label] += time.thread_time_ns() - t0
                calls[_label] += 1

        setattr(owner, name, wrapped)


def phases(python: str, seconds: float, rate: float, nonblocking: bool, bare: bool) -> None:
    cpu: Counter = Counter()
    calls: Counter = Counter()
    if not bare:
        charge(cpu, calls)
    proc = start_target(python, 50)
    try:
        target = session.attach(proc.pid)
        opts = sampler.RecordOptions(rate_hz=rate, duration_s=seconds, pausing=not nonblocking)
        with tempfile.TemporaryFile() as out:
            rec = sampler.Recorder(target, out, opts)
            c0, w0 = time.process_time_ns(), time.monotonic_ns()
            res = rec.run()
            ctot, wtot = time.process_time_ns() - c0, time.monotonic_ns() - w0
    finally:
        proc.kill()
        proc.wait()
    n = max(res.ticks, 1)
    mode = "nonblocking" if nonblocking else "pausing"
    print(
        f"{mode}, {rate:g} Hz, {seconds:g} s: {res.ticks} ticks ({res.ticks / (wtot / 1e9):.0f}/s, "
        f"{res.missed} missed), recorder CPU {ctot / n / 1e3:.1f} us a tick"
    )
    for label in sorted(cpu, key=lambda k: -cpu[k]):
        print(
            f"  {label:32s} {cpu[label] / n / 1e3:7.1f} us a tick"
            f"  ({calls[label] / n:.2f} calls a tick)"
        )


def floor(python: str, rate: float = 1000.0, seconds: float = 2.0) -> None:
    proc = start_target(python, 50)
    try:
        target = session.attach(proc.pid)
        w = walk.StackWalker(target)
        mem = target.memory
        seen: list[list[tuple[int, int]]] = []
        real = mem.read_ranges_partial
        mem.read_ranges_partial = lambda r: (seen.append(list(r)), real(r))[1]  # type: ignore[method-assign]
        for _ in range(5):
            w.walk()
        del mem.read_ranges_partial
        ranges = seen[-1]
        fd = os.open(f"/proc/{proc.pid}/task/{proc.pid}/stat", os.O_RDONLY)

        def calls() -> None:
            real(ranges)
            os.pread(fd, 256, 0)

        ticks = max(int(rate * seconds), 50)

        def loop(body, sleep: bool) -> float:
            period = int(1e9 / rate)
            t0 = time.process_time_ns()
            due = time.monotonic_ns()
            for _ in range(ticks):
                due += period
                d = due - time.monotonic_ns()
                if sleep and d > 0:
                    time.sleep(d / 1e9)
                body()
            return (time.process_time_ns() - t0) / ticks / 1e3

        idle_loop = loop(lambda: None, True)
        woken = loop(calls, True)
        tight = loop(calls, False)
        walk_woken = loop(lambda: (w.walk(), os.pread(fd, 256, 0)), True)
        walk_tight = loop(lambda: (w.walk(), os.pread(fd, 256, 0)), False)
        os.close(fd)
        compiled = compiled_floor(proc.pid, ranges, rate, ticks)
    finally:
        proc.kill()
        proc.wait()
    print(f"{rate:g} Hz loop, CPU a tick ({ticks} ticks, 50-deep target):")
    print(f"  sleep only                                   {idle_loop:6.1f} us")
    print(f"  sleep + process_vm_readv + pread             {woken:6.1f} us")
    print(f"  process_vm_readv + pread, back to back       {tight:6.1f} us")
    print(f"  sleep + a whole walk + pread                 {walk_woken:6.1f} us")
    print(f"  a whole walk + pread, back to back           {walk_tight:6.1f} us")
    if compiled is None:
        print("  compiled loop: not measured (no C compiler, cc, on PATH)")
    else:
        print(f"  compiled: sleep + the same calls             {compiled[0]:6.1f} us")
        print(f"  compiled: the same calls, back to back       {compiled[1]:6.1f} us")


def compiled_floor(
    pid: int, ranges: list[tuple[int, int]], rate: float, ticks: int
) -> tuple[float, float] | None:
    """CPU a tick of bench/floor_loop.c on the same schedule and ranges: (asleep, tight)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "floor_loop")
        subprocess.run([cc, "-O2", "-o", exe, str(ROOT / "bench" / "floor_loop.c")], check=True)
        spans = [f"{a:x}:{n}" for a, n in ranges]
        stat = f"/proc/{pid}/task/{pid}/stat"

        def run(sleep: bool) -> float:
            out = subprocess.run(
                [exe, str(pid), stat, f"{rate:g}", str(ticks), str(int(sleep)), *spans],
                check=True,
                capture_output=True,
                text=True,
            )
            return float(out.stdout)

        return run(True), run(False)


def deep(python: str, depth: int, walks: int = 100) -> None:
    proc = start_target(python, depth)
    try:
        target = session.attach(proc.pid)
        w = walk.StackWalker(target)
        with pause.Pauser(proc.pid) as p:
            t0 = time.thread_time_ns()
            for _ in range(walks):
                p.pause()
                try:
                    stacks = w.walk()
                finally:
                    p.resume()
            cpu = (time.thread_time_ns() - t0) / walks / 1e3
    finally:
        proc.kill()
        proc.wait()
    frames = max(len(s.frames) for s in stacks)
    print(
        f"{depth} deep ({frames} frames), {walks} paused walks: {cpu:.0f} us a walk with "
        f"its pause; older chunks reused in {w.tail_hits} thread walks"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default="3.12", help="target interpreter (pyenv version)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--nonblocking", action="store_true")
    ap.add_argument("--bare", action="store_true", help="no per-step accounting")
    ap.add_argument("--floor", action="store_true", help="the floor, not the recorder")
    ap.add_argument("--deep", type=int, metavar="N", help="walks alone, N frames deep")
    args = ap.parse_args(argv)
    python = bench.pyenv_python(args.python)
    if args.deep:
        deep(python, args.deep)
    elif args.floor:
        floor(python, args.rate)
    else:
        phases(python, args.seconds, args.rate, args.nonblocking, args.bare)


if __name__ == "__main__":
    main()
