"""Long run: ``flamekit record`` at 1000 Hz for N minutes on a churning target, RSS watched.

Issue #7 asks that a recorder attached to a production process for a long time neither
grows nor loses samples. This runs the real CLI (``python -m flamekit record -r RATE -d
SECONDS -- python bench/longrun.py --workload``) and, every few seconds, reads the
recorder's RSS, open descriptors and CPU time from /proc. At the end it checks:

* the trace is complete (END record ``duration``) and every sample the recorder said it
  wrote is in the file (samples in the trace == END's count == the summary line's): no
  sample lost to buffering;
* RSS is flat after warm-up, apart from what new information costs: a recorder interns
  each distinct stack it meets (the trace needs it once), so RSS is fitted as
  ``a + b * frames interned so far + c * time``; ``c`` is growth nothing explains (a
  leak), and ``--check`` fails above ``--max-leak-kb-per-min`` (default 256). The raw
  growth (medians of the first and last fifth) and slope are printed too;
  ``--max-growth-mb`` bounds them if given. ``--depth 40`` keeps the set of stacks small,
  so RSS itself must stay flat.

The workload churns everything a recorder caches: three threads recursing to random
depths (0-400) through several functions, short-lived threads (about 50 a second), and
freshly compiled functions every 100 ms (new code objects, reused addresses, new CODE
records and stacks for the whole run).

Usage::

    python bench/longrun.py                      # 30 minutes
    python bench/longrun.py --minutes 5 --check
    python bench/longrun.py --minutes 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- the target ------------------------------------------------------------------------


def _deep_a(n: int) -> int:
    return _deep_b(n - 1) + 1 if n > 0 else _leaf(n)


def _deep_b(n: int) -> int:
    return _deep_c(n - 1) + 1 if n > 0 else _leaf(n)


def _deep_c(n: int) -> int:
    return _deep_a(n - 1) + 1 if n > 0 else _leaf(n)


def _leaf(n: int) -> int:
    return sum(range(50 + n))


def _recurse_forever(seed: int, depth: int) -> None:
    rng = random.Random(seed)
    while True:
        _deep_a(rng.randrange(depth))


def _short(i: int) -> None:
    _deep_b(i % 40)


def workload(depth: int) -> None:
    """The churning target: runs until killed."""
    sys.setrecursionlimit(depth + 1000)
    for k in range(3):
        threading.Thread(
            target=_recurse_forever, args=(k, depth), daemon=True, name=f"deep-{k}"
        ).start()
    print("ready", os.getpid(), flush=True)
    n = 0
    next_code = next_thread = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_thread:
            t = threading.Thread(target=_short, args=(n,), name=f"short-{n}")
            t.start()
            t.join()
            next_thread = now + 0.02
        if now >= next_code:
            src = f"def generated_{n % 1000}(k):\n    return sum(range(k + {n % 97}))\n"
            ns: dict = {}
            exec(compile(src, f"<generated-{n % 1000}>", "exec"), ns)
            fn = ns[f"generated_{n % 1000}"]
            for _ in range(20):
                fn(200)
            next_code = now + 0.1
        n += 1
        time.sleep(0.001)


# -- the measurement -------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize", "Threads"):
                out[key] = int(value.split()[0])
    return out


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_kb_per_min(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [t for t, _ in points]
    ys = [r for _, r in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60.0


def _interned_over_time(tr, points: list[dict], t0_ns: int) -> None:
    """Add to each reading how many stacks (and frames in them) the recorder had interned
    by then: stack ids are given in order of first use, so it is the largest id sampled."""
    from bisect import bisect_right

    origin = tr.header.start_monotonic_ns
    times = tr.times
    stacks = tr.columns.stack
    running_max = []
    best = 0
    for s in stacks:
        best = max(best, s)
        running_max.append(best)
    frames_upto = [0] * (max(tr.stacks, default=0) + 1)
    total = 0
    for sid in range(1, len(frames_upto)):
        total += len(tr.stacks.get(sid, ()))
        frames_upto[sid] = total
    for p in points:
        t_rel = t0_ns + int(p["t"] * 1e9) - origin
        k = bisect_right(times, t_rel) - 1
        sid = running_max[k] if k >= 0 else 0
        p["stacks"] = sid
        p["frames_interned"] = frames_upto[sid]


def _leak_fit(steady: list[dict]) -> dict:
    """RSS = a + b * frames_interned + c * t: b is bytes per interned frame, c the growth
    left unexplained (KB/min)."""
    if len(steady) < 4:
        return {}
    xs = [(1.0, float(p["frames_interned"]), p["t"] / 60.0) for p in steady]
    ys = [p["rss_kb"] * 1024.0 for p in steady]
    # normal equations, 3x3, solved by hand (no numpy here)
    m = [[sum(x[i] * x[j] for x in xs) for j in range(3)] for i in range(3)]
    v = [sum(x[i] * y for x, y in zip(xs, ys)) for i in range(3)]
    try:
        a, b, c = _solve3(m, v)
    except ZeroDivisionError:
        return {}
    return {
        "bytes_per_interned_frame": round(b, 1),
        "unexplained_growth_kb_per_min": round(c / 1024.0, 1),
    }


def _solve3(m: list[list[float]], v: list[float]) -> list[float]:
    m = [row[:] + [val] for row, val in zip(m, v)]
    for i in range(3):
        piv = max(range(i, 3), key=lambda r: abs(m[r][i]))
        m[i], m[piv] = m[piv], m[i]
        if abs(m[i][i]) < 1e-12:
            raise ZeroDivisionError
        for r in range(3):
            if r != i:
                f = m[r][i] / m[i][i]
                m[r] = [a - f * b for a, b in zip(m[r], m[i])]
    return [m[i][3] / m[i][i] for i in range(3)]


def run(args: argparse.Namespace) -> dict:
    seconds = args.minutes * 60.0
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="flamekit-longrun-"))
    out = workdir / "longrun.fkt"
    cmd = [
        sys.executable, "-m", "flamekit", "record", "-q", "-r", str(args.rate),
        "-d", str(seconds), "-o", str(out), "--",
        args.python, str(Path(__file__).resolve()), "--workload", "--depth", str(args.depth),
    ]  # fmt: skip
    rec = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = rec.stdout.readline()
    if not line.startswith("ready "):
        rec.kill()
        raise SystemExit(f"longrun: the workload did not start: {line!r} {rec.stderr.read()}")
    target = int(line.split()[1])
    t0 = time.monotonic()
    t0_ns = time.monotonic_ns()
    points: list[dict] = []
    try:
        while rec.poll() is None:
            try:
                st = _status(rec.pid)
                points.append(
                    {
                        "t": round(time.monotonic() - t0, 1),
                        "rss_kb": st["VmRSS"],
                        "hwm_kb": st["VmHWM"],
                        "fds": _fds(rec.pid),
                        "cpu_s": round(_cpu_s(rec.pid), 2),
                        "trace_bytes": out.stat().st_size if out.exists() else 0,
                    }
                )
            except (OSError, KeyError):
                pass
            if args.verbose and points:
                p = points[-1]
                print(
                    f"  t={p['t']:7.1f}s rss={p['rss_kb'] / 1024:7.1f} MB fds={p['fds']:3d} "
                    f"cpu={p['cpu_s']:8.1f}s trace={p['trace_bytes'] / 1e6:8.2f} MB",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(args.interval)
    finally:
        if rec.poll() is None:
            rec.kill()
        try:
            os.kill(target, 9)  # -d ended the recording; the workload would run on
        except OSError:
            pass
    _, err = rec.communicate(timeout=60)
    wall = time.monotonic() - t0
    m = re.search(
        r"wrote .*: ([\d,]+) samples in ([\d.]+) s \(([\d,.]+) Hz effective, ([\d,]+) sampling errors; ([^)]*)\)",
        err,
    )
    reported = int(m.group(1).replace(",", "")) if m else None

    from flamekit.trace import load

    tr = load(out)
    _interned_over_time(tr, points, t0_ns)
    steady = [p for p in points if p["t"] >= args.warmup]
    fifth = max(1, len(steady) // 5)
    first = statistics.median(p["rss_kb"] for p in steady[:fifth]) if steady else 0
    last = statistics.median(p["rss_kb"] for p in steady[-fifth:]) if steady else 0
    rss = [p["rss_kb"] for p in points]
    result = {
        "minutes": args.minutes,
        "rate_hz": args.rate,
        "wall_s": round(wall, 1),
        "recorder_exit": rec.returncode,
        "summary_line": m.group(0) if m else err.strip()[-300:],
        "samples_reported": reported,
        "samples_in_trace": len(tr),
        "end_samples": tr.end.samples if tr.end else None,
        "end_reason": tr.end.reason if tr.end else None,
        "truncated": tr.truncated,
        "sampling_errors": tr.end.errors if tr.end else None,
        "effective_hz": float(m.group(3).replace(",", "")) if m else None,
        "threads_in_trace": len(tr.threads),
        "codes_in_trace": len(tr.codes),
        "stacks_in_trace": len(tr.stacks),
        "trace_bytes": out.stat().st_size,
        "bytes_per_sample": round(out.stat().st_size / max(1, len(tr)), 2),
        "rss_start_mb": round(rss[0] / 1024, 1) if rss else None,
        "rss_middle_mb": round(rss[len(rss) // 2] / 1024, 1) if rss else None,
        "rss_end_mb": round(rss[-1] / 1024, 1) if rss else None,
        "rss_max_mb": round(max(rss) / 1024, 1) if rss else None,
        "rss_growth_mb": round((last - first) / 1024, 2),
        "rss_slope_kb_per_min": round(slope_kb_per_min([(p["t"], p["rss_kb"]) for p in steady]), 1),
        # RSS less what interning the stacks seen so far accounts for (least squares over
        # the steady readings): what grows for any other reason, a leak.
        **_leak_fit(steady),
        "fds_max": max((p["fds"] for p in points), default=None),
        "recorder_cpu_percent": round(100 * points[-1]["cpu_s"] / points[-1]["t"], 1)
        if points and points[-1]["t"]
        else None,
        "points": points,
        "trace": str(out),
    }
    lost = reported is None or not (reported == len(tr) == result["end_samples"])
    result["samples_lost"] = None if reported is None else reported - len(tr)
    result["ok"] = (
        not lost
        and result["end_reason"] == "duration"
        and not tr.truncated
        and result.get("unexplained_growth_kb_per_min", 0.0) <= args.max_leak_kb_per_min
        and (args.max_growth_mb is None or result["rss_growth_mb"] <= args.max_growth_mb)
    )
    if not args.keep:
        out.unlink()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--depth", type=int, default=400, help="deepest recursion of the workload")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between RSS readings")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds left out of the growth")
    ap.add_argument(
        "--max-leak-kb-per-min",
        type=float,
        default=256.0,
        help="--check: most RSS growth not explained by newly interned stacks",
    )
    ap.add_argument("--max-growth-mb", type=float, help="--check: most RSS growth at all")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the workload")
    ap.add_argument("--dir", help="where to write the trace (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the trace")
    ap.add_argument("--json", help="write the result (with every RSS reading) here")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the run is ok")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each reading")
    args = ap.parse_args()
    if args.workload:
        workload(args.depth)
        return
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    brief = {k: v for k, v in result.items() if k != "points"}
    print(json.dumps(brief, indent=2))
    pts = result["points"]
    if pts:
        print("RSS curve (t s: MB):", file=sys.stderr)
        step = max(1, len(pts) // 12)
        for p in pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else []):
            print(f"  {p['t']:8.1f}: {p['rss_kb'] / 1024:7.1f}", file=sys.stderr)
    if args.check and not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
