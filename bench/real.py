"""flamekit against py-spy on real programs from PyPI (issue #19): pylint, sympy, a threaded
HTTP server under load, an asyncio program, pytest running networkx's suite.

Usage::

    python bench/real.py --smoke                        # asyncio + sympy, seconds (the tests)
    python bench/real.py --full --pyspy PATH            # everything: 5 workloads x 3.12, 3.8
    python bench/real.py --full --workload pylint,sympy --python 3.12 --pyspy PATH

Each workload runs from its own venv (bench/real_venvs.py: pinned, from PyPI, cached) and
loops in steady state, counting units of work (bench/workloads/real/common.py). One
target process per workload, interpreter and round; inside it, windows alternate::

    base  cfg1  base  cfg2  base ...  base     (the order of the cfgs rotates each round)

where a cfg is (profiler, mode, rate) attached for one window. Per profiled window:

- effective rate: sampled ticks / window. flamekit: the distinct sample times its trace
  stamps inside the window. py-spy writes no timestamps: its own closing count
  ("Samples: N") spread evenly from its launch to SIGINT (its start-up included, which
  understates it slightly);
- recorder CPU per sample: the recorder's utime+stime (/proc/PID/stat) over the window,
  per tick sampled in it;
- sampling errors: flamekit's trace END record (``errors``), py-spy's "Errors: N", both
  over the whole recording, and as a share of its samples;
- target slowdown: the workload's units per second in the window against the mean of the
  unprofiled windows either side (paired), rate measured between unit completions.

Agreement: flamekit and py-spy both non-blocking on the same run at once (``--agree-rate``),
then two flamekit recorders at once; the total-variation distance between the leaf
functions' shares (function name + file basename, idle samples left out), beside the
distance multinomial noise alone gives at those sample counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import real_venvs  # noqa: E402
import run as bench  # noqa: E402  (bench/run.py: the profilers, /proc readers, statistics)

REAL = HERE / "workloads" / "real"
WORKLOADS: dict[str, str] = {
    "pylint": "pylint_loop.py",
    "sympy": "sympy_loop.py",
    "http": "http_load.py",
    "asyncio": "asyncio_mix.py",
    "pytest": "pytest_loop.py",
}
FLAMEKIT, PYSPY = bench.FLAMEKIT, bench.PYSPY
SUFFIX = {FLAMEKIT: ".fkt", PYSPY: ".raw"}
PYSPY_END = re.compile(r"Samples: (\d+) Errors: (\d+)")


@dataclass
class Settings:
    name: str
    rounds: int
    window_s: float  #: one measuring window (profiled or not)
    warmup_s: float  #: after the workload is ready, before the first window
    settle_s: float  #: after a recorder is sampling, before its window
    rates: tuple[float, ...]
    agree_rate: float
    agree_s: float


SMOKE = Settings("smoke", 1, 0.8, 0.5, 0.3, (1000.0,), 1000.0, 0.8)
FULL = Settings("full", 3, 3.0, 3.0, 0.5, (100.0, 1000.0, 10000.0), 1000.0, 4.0)


# -- one target ---------------------------------------------------------------------------


class Workload:
    """A real program looping in steady state; ``mark()`` reads its work counter."""

    def __init__(self, python: str, name: str, tree: Path, max_s: float) -> None:
        args = ["--max-seconds", f"{max_s:g}"]
        if name == "pylint":
            args += ["--tree", str(tree)]
        self.target = bench.Target(python, REAL / WORKLOADS[name], args)
        self.pid = self.target.pid

    def mark(self) -> tuple[int, float]:
        self.target.send("mark\n")
        m = self.target.read()
        return m["count"], m["t"]

    def close(self) -> None:
        self.target.finish(timeout=5)
        self.target.kill()


def work_rate(a: tuple[int, float], b: tuple[int, float]) -> float | None:
    """Units per second between two marks, timed from completion to completion."""
    n, dt = b[0] - a[0], b[1] - a[1]
    return n / dt if n > 0 and dt > 0 else None


def base_window(w: Workload, s: Settings) -> float | None:
    a = w.mark()
    time.sleep(s.window_s)
    return work_rate(a, w.mark())


@dataclass
class Recording:
    rec: bench.Recorder
    t0: int = 0
    t1: int = 0
    t_stop: int = 0
    cpu_s: float | None = None


def start(
    tools: bench.Tools, tool: str, pid: int, out: Path, rate: float, nb: bool, ready: bool = True
) -> Recording:
    """``ready=False``: launch only (the caller waits). A rate run (``ready``) has py-spy
    record idle threads too, one root frame per thread, so that its ticks can be counted:
    its "Samples" count is per thread, not per tick."""
    with open(out.with_suffix(".stdout"), "wb") as so:  # py-spy's closing counts
        rec = tools.start(tool, pid, out, rate, nb, fmt="raw", idle=ready, stdout=so, threads=ready)
    if ready:
        rec.ready()
    return Recording(rec)


def stop(r: Recording) -> None:
    r.t_stop = time.monotonic_ns()
    if r.rec.running:
        r.rec.proc.send_signal(signal.SIGINT)
    r.rec.wait(60)


def measured(recs: list[Recording], w: Workload, s: Settings, window: float) -> float | None:
    """Run one window with RECS attached; their CPU and the workload's rate over it."""
    time.sleep(s.settle_s)
    a = w.mark()
    cpu0 = [bench.proc_cpu_s(r.rec.proc.pid) for r in recs]
    t0 = time.monotonic_ns()
    time.sleep(window)
    cpu1 = [bench.proc_cpu_s(r.rec.proc.pid) for r in recs]
    t1 = time.monotonic_ns()
    b = w.mark()
    for r, c0, c1 in zip(recs, cpu0, cpu1):
        r.t0, r.t1 = t0, t1
        r.cpu_s = c1 - c0 if c0 is not None and c1 is not None else None
    for r in recs:
        stop(r)
    return work_rate(a, b)


# -- reading the recordings ---------------------------------------------------------------


def leaf_key(name: str, filename: str) -> str:
    return f"{bench.leaf_function(name)} ({os.path.basename(filename)})"


def fkt_summary(r: Recording) -> dict:
    """Ticks in the window, all samples, END errors and leaf shares of a flamekit trace."""
    from flamekit.trace import load

    tr = load(r.rec.out)
    origin = tr.header.start_monotonic_ns
    ticks = {t for t in tr.times if r.t0 <= origin + t <= r.t1}
    leaves: Counter[str] = Counter()
    for i in range(len(tr)):
        sid = tr.columns.stack[i]
        if tr.is_idle(i) or not sid:
            continue
        # the innermost frame of Python code (3.12's entry shims are no function)
        codes = (tr.codes[ref] for ref, _ in tr.stacks[sid])
        code = next((c for c in codes if c.filename != "<shim>"), None)
        if code is not None:
            leaves[leaf_key(code.name, code.filename)] += 1
    return {
        "ticks": len(ticks),
        "samples": len(tr),
        "ticks_total": len(set(tr.times)),
        "errors": tr.end.errors if tr.end is not None else None,
        "leaves": leaves,
    }


def pyspy_summary(r: Recording) -> dict:
    printed = r.rec.out.with_suffix(".stdout")
    m = PYSPY_END.search(printed.read_text(errors="replace") + r.rec.stderr)
    total = int(m.group(1)) if m else None
    leaves: Counter[str] = Counter()
    per_thread: Counter[str] = Counter()
    if r.rec.out.exists():
        for stack, n in bench.folded_counts(r.rec.out.read_text()).items():
            leaf = stack.rsplit(";", 1)[-1]
            name, _, where = leaf.partition(" (")
            leaves[leaf_key(name, where.rsplit(":", 1)[0])] += n
            root = stack.split(";", 1)[0]
            if root.startswith("thread ("):  # --threads: "thread (TID): name"
                per_thread[root] += n
    # ticks: the samples of the thread sampled most (--idle: every thread, every tick)
    ticks = max(per_thread.values()) if per_thread else None
    span = (r.t_stop - r.rec.started_ns) / 1e9
    win = (r.t1 - r.t0) / 1e9
    return {
        "ticks": ticks * win / span if ticks else None,
        "samples": total,
        "ticks_total": ticks,
        "errors": int(m.group(2)) if m else None,
        "leaves": leaves,
    }


def summary(r: Recording) -> dict:
    out = (fkt_summary if r.rec.tool == FLAMEKIT else pyspy_summary)(r)
    win = (r.t1 - r.t0) / 1e9
    ticks = out["ticks"]
    out.update(
        tool=r.rec.tool,
        status=r.rec.status,
        window_s=win,
        effective_hz=ticks / win if ticks else None,
        cpu_us_per_sample=1e6 * r.cpu_s / ticks if ticks and r.cpu_s is not None else None,
    )
    for path in (r.rec.out, r.rec.out.with_suffix(".stdout")):
        if path.exists():
            path.unlink()
    return out


def tv_distance(a: Counter[str], b: Counter[str]) -> float | None:
    na, nb = sum(a.values()), sum(b.values())
    if not na or not nb:
        return None
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


def tv_noise(p: Counter[str], n1: int, n2: int) -> float | None:
    """Expected TV distance between two independent samples of sizes n1, n2 drawn from the
    same distribution P (normal approximation: E|X| = sd * sqrt(2/pi) per share)."""
    n = sum(p.values())
    if not n or not n1 or not n2:
        return None
    k = math.sqrt(2 / math.pi) * math.sqrt(1 / n1 + 1 / n2)
    return 0.5 * k * sum(math.sqrt((c / n) * (1 - c / n)) for c in p.values())


# -- the run ------------------------------------------------------------------------------


Config = tuple[str, bool, float]  # (profiler, nonblocking, rate)


class RealBench:
    def __init__(self, s: Settings, tools: bench.Tools, work: Path, log: Callable) -> None:
        self.s = s
        self.tools = tools
        self.work = work
        self.log = log
        self.tree = work / "tree"
        shutil.copytree(ROOT / "flamekit", self.tree / "flamekit")  # pylint's fixed tree
        self._n = 0

    def _out(self, suffix: str) -> Path:
        self._n += 1
        return self.work / f"rec{self._n}{suffix}"

    def configs(self) -> list[Config]:
        return [
            (t, nb, r) for r in self.s.rates for t in self.tools.available() for nb in (False, True)
        ]

    def one_round(self, python: str, name: str, rnd: int) -> dict:
        s = self.s
        cfgs = self.configs()
        k = rnd % len(cfgs)
        order = cfgs[k:] + cfgs[:k]
        budget = (len(order) * 2 + 8) * (s.window_s + s.settle_s + 3) + 120
        w = Workload(python, name, self.tree, budget)
        runs: list[dict] = []
        try:
            time.sleep(s.warmup_s)
            before = base_window(w, s)
            for tool, nb, rate in order:
                out = self._out(SUFFIX[tool])
                rec = start(self.tools, tool, w.pid, out, rate, nb)
                rate_on = measured([rec], w, s, s.window_s)
                after = base_window(w, s)
                row = summary(rec)
                base = [x for x in (before, after) if x]
                row.update(nonblocking=nb, rate=rate, work_rate=rate_on)
                row["base_rate"] = sum(base) / len(base) if base else None
                row["slowdown_pct"] = (
                    100 * (row["base_rate"] / rate_on - 1) if rate_on and row["base_rate"] else None
                )
                row.pop("leaves")
                runs.append(row)
                before = after
                if row["status"] not in (0, None):
                    self.log(f"  {tool} exited {row['status']}: {rec.rec.stderr.strip()[-300:]}")
            agree = self.agreement(w)
        finally:
            w.close()
        return {"runs": runs, "agree": agree}

    def agreement(self, w: Workload) -> list[dict]:
        """Two recorders launched together on the same run, non-blocking: flamekit and
        py-spy, then flamekit and flamekit (the reference); TV distance of leaf shares."""
        s = self.s
        agree: list[dict] = []
        pairs = [(FLAMEKIT, PYSPY)] if self.tools.pyspy else []
        pairs.append((FLAMEKIT, FLAMEKIT))  # the reference: two samplers, same run
        for a, b in pairs:
            recs = [  # launched together, so that both cover the same run
                start(self.tools, t, w.pid, self._out(SUFFIX[t]), s.agree_rate, True, False)
                for t in (a, b)
            ]
            for r in recs:
                r.rec.ready()
            measured(recs, w, s, s.agree_s)
            sa, sb = summary(recs[0]), summary(recs[1])
            la, lb = sa["leaves"], sb["leaves"]
            na, nb_ = sum(la.values()), sum(lb.values())
            agree.append(
                {
                    "pair": f"{a} / {b}",
                    "samples": [na, nb_],
                    "tv": tv_distance(la, lb),
                    "tv_noise": tv_noise(la, na, nb_),
                    "top": [
                        [(k, v / sum(x.values())) for k, v in x.most_common(6)] for x in (la, lb)
                    ],
                }
            )
        return agree

    def workload(self, label: str, python: str, name: str) -> dict:
        minor = ".".join(label.split(".")[:2])
        exe = real_venvs.venv_python(name, python, minor)
        rounds = []
        for rnd in range(self.s.rounds):
            self.log(
                f"{name} on {label}: round {rnd + 1}/{self.s.rounds} (load {os.getloadavg()[0]:.2f})"
            )
            rounds.append(self.one_round(exe, name, rnd))
        return {
            "python": label,
            "workload": name,
            "pins": list(real_venvs.pins_for(name, minor)),
            "rounds": rounds,
            "loadavg": os.getloadavg(),
        }


# -- tables -------------------------------------------------------------------------------


def cell(xs: list, spec: str, unit: str = "") -> str:
    return bench.fmt(bench.median(x for x in xs if x is not None), spec, unit)


def aggregate(res: dict) -> dict[Config, dict]:
    by: dict[Config, list[dict]] = {}
    for rnd in res["rounds"]:
        for r in rnd["runs"]:
            by.setdefault((r["tool"], r["nonblocking"], r["rate"]), []).append(r)
    out = {}
    for key, rs in by.items():

        def med(k: str, rs: list[dict] = rs) -> float:
            return bench.median(r[k] for r in rs if r.get(k) is not None)

        err_pct = [
            100 * r["errors"] / r["ticks_total"]
            for r in rs
            if r.get("errors") is not None and r.get("ticks_total")
        ]
        out[key] = {
            "effective_hz": med("effective_hz"),
            "cpu_us": med("cpu_us_per_sample"),
            "errors": med("errors"),
            "errors_pct": bench.median(err_pct),
            "slowdown_pct": med("slowdown_pct"),
            "runs": len(rs),
        }
    return out


def workload_table(res: dict) -> bench.Table:
    agg = aggregate(res)
    t = bench.Table(
        f"{res['workload']} on CPython {res['python']} ({', '.join(res['pins']) or 'stdlib only'})",
        ["profiler", "mode", "rate Hz", "effective Hz", "% of requested", "recorder CPU us/sample",
         "CPU vs py-spy", "errors (% of ticks)", "slowdown", "slowdown vs py-spy"],
    )  # fmt: skip
    for (tool, nb, rate), m in sorted(agg.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        other = agg.get((PYSPY, nb, rate))
        cvs, svs = "-", "-"
        if tool == FLAMEKIT and other is not None:
            cvs = bench._ratio(m["cpu_us"], other["cpu_us"])
            d = m["slowdown_pct"] - other["slowdown_pct"]
            svs = bench.fmt(d, "+.1f", " pt")
        t.rows.append(
            [tool, "nonblocking" if nb else "pausing", f"{rate:g}",
             bench.fmt(m["effective_hz"], ",.0f"), bench.fmt(100 * m["effective_hz"] / rate, ".1f", "%"),
             bench.fmt(m["cpu_us"], ".0f"), cvs,
             f"{bench.fmt(m['errors'], ',.0f')} ({bench.fmt(m['errors_pct'], '.2f', '%')})",
             bench.fmt(m["slowdown_pct"], "+.1f", "%"), svs]
        )  # fmt: skip
    t.notes.append(
        f"medians over {len(res['rounds'])} round(s); load average at the end "
        f"{' '.join(f'{x:.2f}' for x in res['loadavg'])}"
    )
    return t


def agreement_table(results: list[dict], rate: float) -> bench.Table:
    t = bench.Table(
        f"Agreement: leaf-function shares, both recorders non-blocking at {rate:g} Hz on the same run",
        ["workload", "python", "pair", "samples", "TV distance", "noise at these counts"],
    )
    for res in results:
        by: dict[str, list[dict]] = {}
        for rnd in res["rounds"]:
            for a in rnd["agree"]:
                by.setdefault(a["pair"], []).append(a)
        for pair, xs in by.items():
            t.rows.append(
                [res["workload"], res["python"], pair,
                 " / ".join(bench.fmt(bench.median(x["samples"][i] for x in xs), ",.0f") for i in (0, 1)),
                 cell([x["tv"] for x in xs], ".3f"), cell([x["tv_noise"] for x in xs], ".3f")]
            )  # fmt: skip
    t.notes.append(
        "TV = 1/2 sum |p_i - q_i| over leaf functions (name + file basename; idle samples left "
        "out); noise = the distance multinomial sampling alone gives at these counts; "
        "flamekit / flamekit: two flamekit recorders at once, the measured reference"
    )
    return t


GOALS = (
    ("rate_10k", "10 kHz non-blocking effective rate >= py-spy's (and >= 95% on pylint)"),
    ("cpu_1k", "recorder CPU per sample at 1 kHz <= half py-spy's (each mode)"),
    ("errors", "sampling errors (% of ticks) <= py-spy's (every rate and mode)"),
)


def goals_table(results: list[dict]) -> bench.Table:
    t = bench.Table(
        "Goals of issue #19", ["goal", "workload", "python", "flamekit", "py-spy", "met"]
    )
    for res in results:
        agg = aggregate(res)
        w, py = res["workload"], res["python"]
        for key, text in GOALS:
            fk, ps, ok = _goal(key, agg, w)
            if fk is not None:
                t.rows.append([text, w, py, fk, ps, ok])
    return t


def _goal(key: str, agg: dict[Config, dict], workload: str) -> tuple[str | None, str, str]:
    def get(tool: str, nb: bool, rate: float, what: str) -> float:
        m = agg.get((tool, nb, rate))
        return m[what] if m else float("nan")

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "MISSED")

    if key == "rate_10k":
        if (FLAMEKIT, True, 10000.0) not in agg:
            return None, "", ""
        a, b = (
            get(FLAMEKIT, True, 10000.0, "effective_hz"),
            get(PYSPY, True, 10000.0, "effective_hz"),
        )
        ok = None if b != b else a >= b and (workload != "pylint" or a >= 9500)
        return f"{a:,.0f} Hz ({a / 100:.1f}%)", bench.fmt(b, ",.0f", " Hz"), verdict(ok)
    if key == "cpu_1k":
        if (FLAMEKIT, True, 1000.0) not in agg:
            return None, "", ""
        a = [get(FLAMEKIT, nb, 1000.0, "cpu_us") for nb in (False, True)]
        b = [get(PYSPY, nb, 1000.0, "cpu_us") for nb in (False, True)]
        ok = None if b[0] != b[0] else all(x <= y / 2 for x, y in zip(a, b))
        return (f"{a[0]:.0f} / {a[1]:.0f} us", f"{bench.fmt(b[0], '.0f')} / {bench.fmt(b[1], '.0f')} us"
                " (pausing / nonblocking)", verdict(ok))  # fmt: skip
    fk = [m["errors_pct"] for (tool, _, _), m in sorted(agg.items()) if tool == FLAMEKIT]
    ps = [m["errors_pct"] for (tool, _, _), m in sorted(agg.items()) if tool == PYSPY]
    pairs = [
        (m["errors_pct"], agg[(PYSPY, nb, r)]["errors_pct"])
        for (tool, nb, r), m in agg.items()
        if tool == FLAMEKIT and (PYSPY, nb, r) in agg
    ]
    ok = None if not pairs or any(b != b for _, b in pairs) else all(a <= b for a, b in pairs)
    return (f"max {bench.fmt(max(fk, default=float('nan')), '.2f', '%')}",
            f"max {bench.fmt(max(ps, default=float('nan')), '.2f', '%')}", verdict(ok))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="one workload, one python, one rate")
    mode.add_argument("--full", action="store_true")
    ap.add_argument(
        "--workload", help=f"comma-separated: {','.join(WORKLOADS)} (smoke: asyncio,sympy)"
    )
    ap.add_argument("--python", action="append", help="pyenv version or path (default 3.12, 3.8)")
    ap.add_argument("--pyspy", help="py-spy executable (default: beside this python, or PATH)")
    ap.add_argument("--no-pyspy", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--rates", help="comma-separated Hz")
    ap.add_argument("--window", type=float, help="seconds per window")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)

    s = SMOKE if args.smoke else FULL
    if args.rounds:
        s.rounds = args.rounds
    if args.rates:
        s.rates = tuple(float(r) for r in args.rates.split(","))
    if args.window:
        s.window_s = args.window
    names = (args.workload or ("asyncio,sympy" if args.smoke else ",".join(WORKLOADS))).split(",")
    bad = [n for n in names if n not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {list(WORKLOADS)}")
    versions = args.python or (["3.12"] if args.smoke else ["3.12", "3.8"])
    pythons = [
        (bench.python_version(bench.pyenv_python(v)), bench.pyenv_python(v)) for v in versions
    ]
    pyspy = None if args.no_pyspy else (args.pyspy or bench.find_pyspy())
    tools = bench.Tools(pyspy)

    def log(msg: str) -> None:
        print(f"[real {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    log("austin: not measured (not driven by this harness; see docs/benchmarks.md)")
    load0 = os.getloadavg()
    t_start = time.monotonic()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="flamekit-real-") as tmp:
        rb = RealBench(s, tools, Path(tmp), log)
        for label, python in pythons:
            for name in names:
                try:
                    results.append(rb.workload(label, python, name))
                except real_venvs.VenvUnavailable as exc:
                    log(f"SKIP {name} on {label}: venv unavailable: {exc}")
                    if args.smoke:
                        print(f"SKIP: {exc}")
                        return 3
    load1 = os.getloadavg()
    pv = (
        subprocess.run([pyspy, "--version"], capture_output=True, text=True).stdout.strip()
        if pyspy
        else "no py-spy"
    )
    head = [
        f"## Real workloads: flamekit vs py-spy ({s.name}, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- machine: {os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in load0)} at start, "
        f"{' '.join(f'{x:.2f}' for x in load1)} at end; {pv}; austin not measured",
        f"- command: python bench/real.py {' '.join(argv if argv is not None else sys.argv[1:])} "
        f"({time.monotonic() - t_start:.0f} s)",
        f"- windows of {s.window_s:g} s, {s.rounds} round(s), recorder settles {s.settle_s:g} s first",
        "",
    ]
    tables = [goals_table(results)] + [workload_table(r) for r in results]
    tables.append(agreement_table(results, s.agree_rate))
    text = "\n".join(head) + "\n" + "\n".join(t.markdown() for t in tables)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(
            json.dumps({"settings": s.__dict__, "results": results}, indent=1, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
