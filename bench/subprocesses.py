"""flamekit ``record --subprocesses`` beside py-spy's ``--subprocesses`` on one tree.

The target is tests/targets/prefork.py: a master and WORKERS forked workers that work and
sleep in turn (each worker a different share). Each round starts a fresh tree and attaches
one profiler to its master for SECONDS; rounds alternate flamekit and py-spy, per rate and
mode, so both meet the same machine. Per run: the recorder's CPU (its own rusage) per
tick, and the effective rate per process (sampling instants of each process per second;
py-spy runs with ``--idle`` so that it counts a sleeping worker's samples too).

Usage::

    python bench/subprocesses.py                      # 8 workers, 100 and 1000 Hz, 3 rounds
    python bench/subprocesses.py --rates 1000 --rounds 5 --seconds 5 --python 3.8

Needs py-spy (``pip install py-spy``; bench-only) beside this interpreter or on PATH.
Prints a markdown table: medians over the rounds, with the range.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from flamekit.trace import load  # noqa: E402

PREFORK = ROOT / "tests" / "targets" / "prefork.py"
PROCESS_FRAME = re.compile(r"(?:^|;)process (\d+):")


def start_tree(
    python: str, workers: int, seconds: float, tmp: Path
) -> tuple[subprocess.Popen, dict]:
    rep = tmp / f"tree-{time.monotonic_ns()}.json"
    proc = subprocess.Popen([python, str(PREFORK), str(workers), str(seconds + 30), str(rep)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (rep.exists() and rep.read_text()):
        time.sleep(0.01)
    return proc, json.loads(rep.read_text().splitlines()[0])


def run_once(tool: str, python: str, workers: int, rate: float, nb: bool, seconds: float,
             tmp: Path, pyspy: str) -> dict:  # fmt: skip
    proc, tree = start_tree(python, workers, seconds, tmp)
    try:
        time.sleep(0.5)
        master = str(tree["master"])
        if tool == "flamekit":
            out = tmp / "run.fkt"
            cmd = [sys.executable, "-m", "flamekit", "record", "-q", "--subprocesses", "-r",
                   f"{rate:g}", "-d", f"{seconds:g}", "-p", master, "-o", str(out)]  # fmt: skip
        else:
            out = tmp / "run.txt"
            cmd = [pyspy, "record", "--subprocesses", "--idle", "-r", f"{rate:g}", "-d",
                   f"{seconds:g}", "-p", master, "-f", "raw", "-o", str(out)]  # fmt: skip
        if nb:
            cmd.insert(len(cmd) - 2, "--nonblocking")
        t0 = time.monotonic()
        rec = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=bench._sigint_default)  # fmt: skip
        _, status, usage = os.wait4(rec.pid, 0)
        wall = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
        subprocess.run(["pkill", "-f", str(PREFORK)], check=False)
    cpu = usage.ru_utime + usage.ru_stime
    if tool == "flamekit":
        tr = load(out)
        instants: dict[int, set[int]] = {}
        for t, when in zip(tr.columns.thread, tr.times):
            instants.setdefault(tr.run_of(t).pid, set()).add(when)
        per = {pid: len(ts) for pid, ts in instants.items()}
        duration = tr.duration_ns / 1e9
    else:
        per = Counter()
        for line in out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            pids = PROCESS_FRAME.findall(stack)  # py-spy nests a child under its parent
            if pids:
                per[int(pids[-1])] += int(n)
        duration = seconds
    rates = sorted(n / duration for n in per.values())
    return {
        "tool": tool,
        "rate": rate,
        "nonblocking": nb,
        "processes": len(per),
        # per process-sample (one process's stacks at one instant): flamekit stamps each
        # process of a tick apart, so its distinct times are not ticks
        "cpu_per_sample_us": 1e6 * cpu / sum(per.values()) if per else float("nan"),
        "cpu_share": cpu / wall,
        "rate_per_process_median": rates[len(rates) // 2] if rates else 0.0,
        "rate_per_process_min": rates[0] if rates else 0.0,
        "status": status,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rates", default="100,1000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--modes", default="pausing,nonblocking")
    args = ap.parse_args()
    python = bench.pyenv_python(args.python)
    pyspy = bench.find_pyspy()
    if pyspy is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    rows: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for rate in [float(r) for r in args.rates.split(",")]:
            for nb in [m == "nonblocking" for m in args.modes.split(",")]:
                for n in range(args.rounds):
                    order = ["flamekit", "py-spy"] if n % 2 == 0 else ["py-spy", "flamekit"]
                    for tool in order:
                        r = run_once(tool, python, args.workers, rate, nb, args.seconds, tmp, pyspy)
                        rows.setdefault((rate, nb, tool), []).append(r)
                        print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"{args.workers} workers + master, CPython {bench.python_version(python)}, "
          f"{args.seconds:g} s a run, {args.rounds} paired rounds (medians, [range])\n")  # fmt: skip
    print(
        "| rate Hz | mode | profiler | recorder CPU us per process-sample | CPU share | Hz per process (median, min) | processes |"
    )
    print("|---|---|---|---|---|---|---|")
    for (rate, nb, tool), rs in sorted(rows.items()):

        def cell(key: str, spec: str, rs: list[dict] = rs) -> str:
            xs = sorted(r[key] for r in rs)
            return f"{bench.median(xs):{spec}} [{xs[0]:{spec}}-{xs[-1]:{spec}}]"

        print(
            f"| {rate:g} | {'non-blocking' if nb else 'pausing'} | {tool} | "
            f"{cell('cpu_per_sample_us', '.0f')} | {cell('cpu_share', '.2f')} | "
            f"{cell('rate_per_process_median', '.0f')}, {cell('rate_per_process_min', '.0f')} | "
            f"{bench.median(r['processes'] for r in rs):.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
