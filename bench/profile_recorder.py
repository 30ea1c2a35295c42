"""Where does the recorder's CPU go? Profile ``flamekit record`` at 1000 Hz on the 50-deep
CPU-bound target, two ways:

* **flamekit records flamekit**: the recorder under test (inner) samples the target; a
  second flamekit (outer, ``--nonblocking``, so it never stops the inner one) samples the
  inner recorder. Each non-idle sample of the inner recorder's main thread is put in one
  bucket by the step of the sampling loop it is in (the frame under ``Recorder.run`` /
  ``Recorder._tick``) and by the module of its innermost flamekit frame. Little
  distortion: the inner recorder runs at full speed.
* **cProfile**: the inner recorder run under ``python -m cProfile``; exact call counts and
  per-function times (inflated by cProfile's own per-call cost, so read them as shares and
  counts, and scale by the unprofiled CPU per sample).

Usage::

    python bench/profile_recorder.py                    # 3.12 target, pausing, 10 s
    python bench/profile_recorder.py --nonblocking --seconds 5 --python 3.8
    python bench/profile_recorder.py --nonblocking --workload pylint   # a real program
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401  (the recorder runs under it in a child process)
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

#: Steps of the sampling loop: function names in sampler.py -> bucket, tried from the
#: root down (the first one met names the step).
STEPS = {
    "_check_codes": "code checks (codes.py: re-read + compare code headers)",
    "_write_samples": "writer (interning stacks, packing samples, thread names)",
    "walk": "walker (read thread states + frames, parse)",
    "pause": "pause (PTRACE_INTERRUPT + waitpid per thread)",
    "resume": "resume (PTRACE_CONT per thread)",
    "service": "between ticks (pauser.service: drain events, sigtimedwait)",
    "_wait_nonblocking": "between ticks (nonblocking: exists check + sleep)",
    "<dictcomp>": "/proc run state (idle.py, before pausing)",
    "running": "/proc run state (idle.py, before pausing)",
    "tick": "writer flush (TraceWriter.tick)",
    "update": "progress line",
    "advance": "schedule",
    "_interrupted": "loop: sigtimedwait(SIGINT/SIGTERM) poll",
}

#: Innermost-module buckets (where the CPU is actually burnt).
MODULES = {
    "memory.py": "memory.py (process_vm_readv / pread, buffers)",
    "walker.py": "walker.py (Python parsing)",
    "codes.py": "codes.py",
    "code.py": "code.py (fingerprints, code reads)",
    "pause.py": "pause.py (ptrace, waitpid, sigtimedwait)",
    "idle.py": "idle.py (/proc/TID/stat)",
    "writer.py": "trace writer",
    "samplecodec.py": "trace writer",
    "records.py": "trace writer",
    "sampler.py": "sampler.py (loop)",
    "schedule.py": "sampler.py (loop)",
    "progress.py": "sampler.py (loop)",
    "threadnames.py": "threadnames.py",
}


def classify(trace, main_ref: int) -> tuple[Counter, Counter, int]:
    """(step counts, module counts, samples) over the non-idle samples of one thread."""
    codes = trace.codes
    steps: Counter = Counter()
    mods: Counter = Counter()
    n = 0
    cols = trace.columns
    cache: dict[int, tuple[str, str]] = {}
    for i in range(len(trace)):
        if cols.thread[i] != main_ref or trace.is_idle(i):
            continue
        sid = cols.stack[i]
        if sid not in cache:
            frames = trace.stacks.get(sid, ())  # innermost first
            names = [(os.path.basename(codes[c].filename), codes[c].name) for c, _ in frames]
            step = "start-up / other"
            in_loop = False
            for fname, func in reversed(names):
                if fname == "sampler.py" and func in ("run", "_tick"):
                    in_loop = True
                    continue
                if (
                    in_loop
                    and func in STEPS
                    and fname
                    in (
                        "sampler.py",
                        "pause.py",
                        "walker.py",
                        "writer.py",
                        "progress.py",
                        "schedule.py",
                        "idle.py",
                    )
                ):
                    step = STEPS[func]
                    break
                if in_loop:
                    step = f"loop: {func} ({fname})"
                    break
            else:
                if in_loop:
                    step = "loop: sampler.py's own lines"
            mod = "other"
            for fname, _ in names:
                if fname in MODULES:
                    mod = MODULES[fname]
                    break
            cache[sid] = (step, mod)
        step, mod = cache[sid]
        steps[step] += 1
        mods[mod] += 1
        n += 1
    return steps, mods, n


def start_target(args: argparse.Namespace, python: str, tmp: Path) -> bench.Target:
    """The 50-deep target, or one of bench/real.py's real programs (``--workload``)."""
    if not args.workload:
        return bench.Target(
            python, bench.DEEP, ["--depth", str(args.depth), "--max-seconds", "600"]
        )
    import shutil

    import real

    minor = ".".join(bench.python_version(python).split(".")[:2])
    exe = real.real_venvs.venv_python(args.workload, python, minor)
    tree = tmp / "tree"
    if not tree.exists():
        shutil.copytree(real.ROOT / "flamekit", tree / "flamekit")
    target = real.Workload(exe, args.workload, tree, 600).target
    time.sleep(2.0)  # past its first unit's caches, as bench/real.py's warm-up
    return target


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--outer-rate", type=float, default=400.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--nonblocking", action="store_true")
    ap.add_argument("--top", type=int, default=25, help="cProfile rows to print")
    ap.add_argument("--workload", help="a real program of bench/real.py instead (pylint, ...)")
    args = ap.parse_args()
    python = bench.pyenv_python(args.python)
    tmp = Path(tempfile.mkdtemp(prefix="flamekit-prof-"))
    mode = ["--nonblocking"] if args.nonblocking else []
    inner_cmd = [sys.executable, "-m", "flamekit", "record", "-q", "-r", f"{args.rate:g}", *mode]
    print(
        f"# recorder profile: target CPython {bench.python_version(python)}, "
        f"{args.workload or f'depth {args.depth}'}, {args.rate:g} Hz, {'nonblocking' if mode else 'pausing'}, "
        f"{args.seconds:g} s; recorder on CPython {sys.version.split()[0]}\n"
    )

    # 1. flamekit records flamekit --------------------------------------------------------
    target = start_target(args, python, tmp)
    try:
        inner = subprocess.Popen(
            [*inner_cmd, "-p", str(target.pid), "-o", str(tmp / "inner.fkt")],
            stderr=subprocess.PIPE,
        )
        while not (tmp / "inner.fkt").exists() or (tmp / "inner.fkt").stat().st_size == 0:
            time.sleep(0.01)
        outer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flamekit",
                "record",
                "-q",
                "--nonblocking",
                "-r",
                f"{args.outer_rate:g}",
                "-p",
                str(inner.pid),
                "-o",
                str(tmp / "outer.fkt"),
            ],
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
        c0, t0 = bench.proc_cpu_s(inner.pid), time.monotonic_ns()
        time.sleep(args.seconds)
        c1, t1 = bench.proc_cpu_s(inner.pid), time.monotonic_ns()
        outer.send_signal(signal.SIGTERM)  # not SIGINT: a background job ignores that
        outer.wait(60)
        inner.send_signal(signal.SIGTERM)
        inner.wait(60)
    finally:
        target.kill()
    times, _, _, _ = bench.fkt_sample_times(tmp / "inner.fkt")
    n_inner = bench.count_between(times, t0, t1)
    us = 1e6 * (c1 - c0) / n_inner if n_inner else float("nan")
    eff = n_inner / ((t1 - t0) / 1e9)
    print(
        f"inner recorder: {n_inner:,} samples in {(t1 - t0) / 1e9:.1f} s ({eff:.0f} Hz), "
        f"{us:.0f} us CPU per sample ({100 * (c1 - c0) / ((t1 - t0) / 1e9):.0f}% of a core)"
        "\n"
    )
    from flamekit.trace import load

    outer_tr = load(tmp / "outer.fkt")
    main_ref = min(outer_tr.threads)  # the recorder's main thread is seen first
    steps, mods, n = classify(outer_tr, main_ref)
    print(f"## flamekit sampling flamekit: {n:,} on-CPU samples of the recorder's main thread\n")
    print("| step of the sampling loop | share | us per inner sample |")
    print("|---|---|---|")
    for k, v in steps.most_common():
        print(f"| {k} | {100 * v / n:.1f}% | {us * v / n:.0f} |")
    print("\n| innermost flamekit module | share | us per inner sample |")
    print("|---|---|---|")
    for k, v in mods.most_common():
        print(f"| {k} | {100 * v / n:.1f}% | {us * v / n:.0f} |")

    # 2. cProfile ----------------------------------------------------------------------------
    target = start_target(args, python, tmp)
    prof = tmp / "recorder.prof"
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(prof),
                *inner_cmd[1:],
                "-p",
                str(target.pid),
                "-d",
                f"{args.seconds:g}",
                "-o",
                str(tmp / "cprof.fkt"),
            ],
            stderr=subprocess.PIPE,
        )
        proc.wait(args.seconds + 120)
    finally:
        target.kill()
    tr = load(tmp / "cprof.fkt")
    ticks = len(tr)
    st = pstats.Stats(str(prof))
    total = sum(v[2] for v in st.stats.values())  # tottime
    rows = []
    for (fname, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append((tt, nc, ct, f"{os.path.basename(fname)}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"\n## cProfile: {ticks:,} samples; per-sample figures are cProfile-inflated\n")
    print("| function | calls/sample | self us/sample | cumulative us/sample | self share |")
    print("|---|---|---|---|---|")
    for tt, nc, ct, name in rows[: args.top]:
        print(
            f"| `{name}` | {nc / ticks:.2f} | {1e6 * tt / ticks:.1f} | "
            f"{1e6 * ct / ticks:.1f} | {100 * tt / total:.1f}% |"
        )
    print(f"\nfiles kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
