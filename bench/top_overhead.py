"""What watching costs the watched: a CPU-bound target's slowdown under ``flamekit top -p``
beside ``py-spy top``, each at its default rate (100 Hz) and mode (pausing), each drawing
its full screen in a real pseudo-terminal (120x40).

Usage::

    python bench/top_overhead.py --pyspy /work/wt-sub/.venv/bin/py-spy --rounds 7

Each round times the same self-timed run of bench/workloads/deep.py (50 frames deep, a
fixed number of leaf calls, about ``--work`` seconds unprofiled) three ways: unprofiled,
under flamekit top, under py-spy top, in an order that rotates every round, so the drift
of a shared machine falls on all three alike. The viewer attaches while the target waits,
gets ``--settle`` seconds to draw its first screen, then the target runs its work; its
slowdown is its elapsed time against the same round's unprofiled run. On a shared
machine that wall time mostly measures the others' load, so two figures that load leaves
alone are given too: the share of the window the target was *held* (neither on a CPU nor
waiting for one, from /proc/PID/task/PID/schedstat: a CPU-bound target is only ever
stopped by its profiler), and its CPU time against the unprofiled run's (what the pauses
cost its caches). The viewer's own CPU over the timed window is read from /proc. Medians over the rounds are printed, with
flamekit's slowdown over py-spy's. py-spy is a bench-only dependency (``--pyspy PATH``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import DEEP, Target, median, proc_cpu_s  # noqa: E402

ROOT = HERE.parent
ROWS, COLS = 40, 120


class Viewer:
    """A ``top`` running in a pseudo-terminal of its own; its screen is read and dropped."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8")
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.master = master
        self.drawn = 0  #: bytes of screen drawn so far
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.drawn += len(data)

    def stop(self) -> int | None:
        """Ctrl-C, as a user would quit it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        return self.proc.returncode


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of the main thread."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        on_ns, wait_ns, _ = f.read().split()
    return int(on_ns) / 1e9, int(wait_ns) / 1e9


def viewer_argv(tool: str, pid: int, pyspy: str) -> list[str]:
    if tool == "flamekit":
        return [sys.executable, "-m", "flamekit", "top", "-p", str(pid)]
    return [pyspy, "top", "--pid", str(pid)]


def calibrate(python: str, seconds: float) -> int:
    out = subprocess.run(
        [python, str(DEEP), "--calibrate", str(min(0.5, seconds))],
        capture_output=True,
        text=True,
        check=True,
    )
    return max(1000, int(json.loads(out.stdout)["per_second"] * seconds))


def timed_run(python: str, work: int, tool: str | None, pyspy: str, settle: float) -> dict:
    target = Target(python, DEEP, ["--depth", "50", "--work", str(work)])
    viewer = None
    try:
        if tool is not None:
            viewer = Viewer(viewer_argv(tool, target.pid, pyspy))
            deadline = time.monotonic() + 30
            while viewer.drawn < 2000 and time.monotonic() < deadline:  # a screen drawn
                time.sleep(0.02)
            time.sleep(settle)
            if viewer.proc.poll() is not None:
                raise RuntimeError(f"{tool} top exited before the run ({viewer.proc.returncode})")
        cpu0 = proc_cpu_s(viewer.proc.pid) if viewer else None
        on0, wait0 = schedstat(target.pid)
        t0 = time.monotonic()
        target.send("go\n")
        res = target.read()
        window = time.monotonic() - t0
        on1, wait1 = schedstat(target.pid)
        cpu1 = proc_cpu_s(viewer.proc.pid) if viewer else None
        status = viewer.stop() if viewer else None
        target.finish()
    finally:
        if viewer is not None and viewer.proc.poll() is None:
            viewer.proc.kill()
        target.kill()
    # Neither on a CPU nor waiting for one: held (a CPU-bound target only stops when
    # a profiler stops it). The load-proof part of the slowdown.
    held = window - (on1 - on0) - (wait1 - wait0)
    row = {"elapsed": res["elapsed"], "cpu": res["cpu"], "held_pct": 100 * max(0.0, held) / window}
    if viewer is not None:
        row["viewer_cpu_pct"] = (
            100 * (cpu1 - cpu0) / window if cpu0 is not None and cpu1 is not None else None
        )
        row["status"] = status
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pyspy", required=True, help="path of the py-spy executable")
    ap.add_argument("--python", default=sys.executable, help="the target's interpreter")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work", type=float, default=3.0, help="seconds of work, unprofiled")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds before the work starts")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args()

    work = calibrate(args.python, args.work)
    tools: list[str | None] = [None, "flamekit", "py-spy"]
    runs: dict[str, list[dict]] = {"none": [], "flamekit": [], "py-spy": []}
    for r in range(args.rounds):
        order = tools[r % 3 :] + tools[: r % 3]
        for tool in order:
            row = timed_run(args.python, work, tool, args.pyspy, args.settle)
            runs[tool or "none"].append(row)
        base = runs["none"][-1]["elapsed"]
        print(
            f"round {r + 1}: unprofiled {base:.3f} s; "
            + "; ".join(
                f"{t} {runs[t][-1]['elapsed']:.3f} s, held {runs[t][-1]['held_pct']:.2f}%"
                for t in ("flamekit", "py-spy")
            ),
            file=sys.stderr,
        )

    def slowdown(tool: str, what: str) -> list[float]:
        base = runs["none"]
        return [100 * (r[what] / b[what] - 1) for r, b in zip(runs[tool], base)]

    slow = {t: slowdown(t, "elapsed") for t in ("flamekit", "py-spy")}
    cpu_slow = {t: slowdown(t, "cpu") for t in ("flamekit", "py-spy")}
    print(f"target: {args.python} bench/workloads/deep.py --depth 50, {work:,} leaf calls")
    print(f"unprofiled run: {median(r['elapsed'] for r in runs['none']):.3f} s (median)")
    print(
        "| viewer | wall-time slowdown, median [min..max] | target held | target CPU "
        "slowdown | viewer CPU | exit |"
    )
    print("|---|---|---|---|---|---|")
    held_none = median(r["held_pct"] for r in runs["none"])
    print(f"| none | | {held_none:.2f}% | | | |")
    for t in ("flamekit", "py-spy"):
        cpu = [r["viewer_cpu_pct"] for r in runs[t] if r.get("viewer_cpu_pct") is not None]
        statuses = sorted({r["status"] for r in runs[t]})
        print(
            f"| {t} top | {median(slow[t]):+.1f}% [{min(slow[t]):+.1f}..{max(slow[t]):+.1f}] "
            f"| {median(r['held_pct'] for r in runs[t]):.2f}% | {median(cpu_slow[t]):+.1f}% "
            f"| {median(cpu):.1f}% | {statuses} |"
        )
    held = {t: median(r["held_pct"] for r in runs[t]) for t in ("flamekit", "py-spy")}
    if held["py-spy"] > 0:
        print(f"flamekit / py-spy time held: {held['flamekit'] / held['py-spy']:.2f}x")
    fk, ps = median(slow["flamekit"]), median(slow["py-spy"])
    ratio = f"{fk / ps:.2f}x" if ps > 0 else "n/a (py-spy's median slowdown is not positive)"
    paired = [a - b for a, b in zip(slow["flamekit"], slow["py-spy"])]
    print(
        f"flamekit / py-spy slowdown: {ratio}; paired difference per round "
        f"(flamekit - py-spy): median {median(paired):+.1f} points"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
