"""flamekit against py-spy: one command, same workloads, same run, interleaved.

Usage::

    python bench/run.py --full                # everything (about 40 minutes), docs/benchmarks.md
    python bench/run.py --smoke               # every measure, cut down to seconds (the test suite)
    python bench/run.py --full --only slowdown,accuracy --python 3.12
    python bench/run.py --full --json results.json --no-pyspy
    python bench/run.py --full --only slowdown --rates 1000 --python 2.7 --python 3.6 --python 3.7

Measures (``--only`` takes these names):

  slowdown   the self-timing 50-deep CPU-bound target, unprofiled and under each profiler at
             100 and 1000 Hz, pausing and --nonblocking; paired runs, median slowdown
  rate       effective sampling rate and recorder CPU per sample (the recorder's own
             utime+stime from /proc/PID/stat over a steady window) at 100 Hz, 1000 Hz and
             a sweep of higher rates, to find the highest rate each sustains
  scaling    recorder CPU per sample as stack depth (10, 50, 200, 1000) and threads
             (1, 8, 64) grow
  size       bytes per sample: .fkt against py-spy's speedscope and raw outputs
  accuracy   measured share of a target whose CPU split is known to be 25/75
  convert    flamekit convert throughput and peak memory per format (bench/convert_bench.py)
  memory     recorder RSS over a long 1000 Hz recording, sampled over time

Every comparison runs flamekit and py-spy on the same target program, with the same
interpreter, in one process of this harness, alternating A B A B ... (the order rotates
each round) so that the drift of a shared, noisy machine falls on both alike. Tables
print medians over the rounds and ratios against py-spy; ``--json`` keeps every run.

py-spy is a bench-only dependency (``pip install -e '.[bench]'``): without it the
py-spy columns say so and everything else still runs.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
DEEP = WORKLOADS / "deep.py"
SPLIT = WORKLOADS / "split.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")

MEASURES = ("slowdown", "rate", "scaling", "size", "accuracy", "convert", "memory")
FLAMEKIT = "flamekit"
PYSPY = "py-spy"


# -- settings ---------------------------------------------------------------------------


@dataclass
class Settings:
    """How long and how often; ``--smoke`` and ``--full`` are two presets of this."""

    name: str
    reps: int  #: paired rounds for slowdown (and rate at 100/1000 Hz, which shares them)
    work_s: float  #: unprofiled length of one timed slowdown run
    settle_s: float  #: time given to a profiler to attach before measuring
    rates: tuple[float, ...]  #: slowdown / rate rates
    sweep: tuple[float, ...]  #: higher rates for "the highest rate sustained"
    sweep_reps: int
    window_s: float  #: steady CPU window of a spin run
    depths: tuple[int, ...]
    threads: tuple[int, ...]
    scaling_reps: int
    size_s: float
    accuracy_s: float
    accuracy_rates: tuple[float, ...]
    accuracy_reps: int
    convert_samples: int
    convert_stacks: int
    memory_s: float
    memory_every_s: float
    size_workloads: tuple[str, ...] = ("deep50", "split")


SMOKE = Settings(
    name="smoke",
    reps=1,
    work_s=0.15,
    settle_s=0.4,
    rates=(1000.0,),
    sweep=(2000.0,),
    sweep_reps=1,
    window_s=0.3,
    depths=(10,),
    threads=(8,),
    scaling_reps=1,
    size_s=0.5,
    accuracy_s=0.6,
    accuracy_rates=(1000.0,),
    accuracy_reps=1,
    convert_samples=20_000,
    convert_stacks=500,
    memory_s=2.0,
    memory_every_s=0.25,
    size_workloads=("deep50",),
)

FULL = Settings(
    name="full",
    reps=5,
    work_s=2.0,
    settle_s=1.0,
    rates=(100.0, 1000.0),
    sweep=(2000.0, 5000.0, 10000.0),
    sweep_reps=3,
    window_s=3.0,
    depths=(10, 50, 200, 1000),
    threads=(1, 8, 64),
    scaling_reps=3,
    size_s=5.0,
    accuracy_s=6.0,
    accuracy_rates=(1000.0,),
    accuracy_reps=3,
    convert_samples=1_000_000,
    convert_stacks=5000,
    memory_s=600.0,
    memory_every_s=5.0,
)

#: The issue's targets: flamekit against py-spy in the same run, and absolute ones.
TARGET_TEXT = {
    "nb_vs_pyspy": "non-blocking slowdown at 1000 Hz within 1 point of py-spy's",
    "pause_vs_pyspy": "pausing slowdown no worse than py-spy's (each rate)",
    "rate_1000": "effective rate >= 99% of requested at 1000 Hz",
    "accuracy": "measured split within 2 points of the truth (25%)",
    "cpu_1000": "recorder CPU <= 150 us per sample at 1000 Hz, 50-deep CPU-bound target",
    "nb_3pct": "non-blocking target slowdown <= 3% (1000 Hz)",
    "memory_flat": "recorder RSS flat over the long 1000 Hz recording",
}


# -- processes --------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a whole process (all its threads, live or exited), in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Target:
    """A workload process started by the harness (so no profiler ever reaps it)."""

    def __init__(self, python: str, script: Path, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [python, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.read()
        self.pid = int(line["ready"])

    def read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"workload {self.proc.args} ended early: {err.strip()}")
        return json.loads(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def finish(self, timeout: float = 10.0) -> str:
        """SIGTERM, close stdin; returns whatever the workload printed since its last read."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            out, _ = self.proc.communicate(timeout=timeout)  # closes stdin too
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""

    def kill(self) -> None:
        """Make sure the workload is gone (after finish(), or after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


def _sigint_default() -> None:  # runs in the profiler's process, before exec
    """SIGINT stops a profiler here, so it must not be ignored: a bench started in the
    background (nohup, a non-interactive shell's job) ignores it, the profilers would
    inherit that, and flamekit keeps a signal its parent chose to ignore ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Recorder:
    """One profiler process attached to a target."""

    tool: str
    proc: subprocess.Popen
    out: Path
    fmt: str
    started_ns: int
    rusage: object | None = None
    status: int | None = None
    stderr: str = ""

    def poll(self) -> int | None:
        """The exit status once the recorder has exited (reaped here, with its rusage)."""
        if self.status is None and self.rusage is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                self.proc.returncode = self.status
                self.rusage = usage
        return self.status

    def ready(self, timeout: float = 20.0) -> None:
        """Wait until the recorder is sampling: flamekit's trace has reached the disk
        (its writer flushes within 0.25 s of the first samples); py-spy starts at once."""
        deadline = time.monotonic() + timeout
        if self.tool != FLAMEKIT:
            time.sleep(0.1)
            return
        while self.running and time.monotonic() < deadline:
            try:
                if self.out.stat().st_size > 0:
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self.rusage is None and self.poll() is None

    def wait(self, timeout: float) -> None:
        """Reap the recorder (SIGINT after ``timeout``, SIGKILL 10 s later)."""
        deadline = time.monotonic() + timeout
        signals = [signal.SIGINT, signal.SIGKILL]
        while self.running:
            if time.monotonic() > deadline and signals:
                self.proc.send_signal(signals.pop(0))
                deadline = time.monotonic() + 10
            time.sleep(0.02)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()

    @property
    def peak_rss_mb(self) -> float:
        return self.rusage.ru_maxrss / 1024 if self.rusage is not None else float("nan")


class Tools:
    """Where the profilers are, and how to start each one."""

    def __init__(self, pyspy: str | None) -> None:
        self.pyspy = pyspy

    def available(self) -> list[str]:
        return [FLAMEKIT] + ([PYSPY] if self.pyspy else [])

    def start(
        self,
        tool: str,
        pid: int,
        out: Path,
        rate: float,
        nonblocking: bool,
        duration: float | None = None,
        fmt: str = "raw",
        idle: bool = False,
        stdout: int | IO[bytes] = subprocess.DEVNULL,
        threads: bool = False,
    ) -> Recorder:
        """``stdout``: where the profiler's standard output goes (py-spy prints its
        closing "Samples: N Errors: M" there); ``threads``: py-spy's --threads (a root
        frame per thread, so its per-thread sample counts can be told apart)."""
        if tool == FLAMEKIT:
            cmd = [sys.executable, "-m", "flamekit", "record", "-q", "-p", str(pid)]
            cmd += ["-r", f"{rate:g}", "-o", str(out)]
            fmt = "fkt"
        else:
            assert self.pyspy is not None
            cmd = [self.pyspy, "record", "-p", str(pid), "-r", f"{rate:g}", "-o", str(out)]
            cmd += ["-f", fmt]
            if idle:
                cmd.append("--idle")
            if threads:
                cmd.append("--threads")
        if nonblocking:
            cmd.append("--nonblocking")
        if duration is not None:  # py-spy's -d is really a sample count: rate x seconds
            cmd += ["-d", f"{duration:g}" if tool == FLAMEKIT else str(max(1, round(duration)))]
        proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=subprocess.PIPE, preexec_fn=_sigint_default
        )
        return Recorder(tool, proc, out, fmt, time.monotonic_ns())


# -- reading what the profilers wrote ---------------------------------------------------


def fkt_sample_times(path: Path) -> tuple[list[int], int, int, int]:
    """(absolute monotonic ns of every sample, thread count, bytes, samples)."""
    from flamekit.trace import load

    tr = load(path)
    origin = tr.header.start_monotonic_ns
    return [origin + t for t in tr.times], len(tr.threads), tr.size, len(tr)


def count_between(times: list[int], t0: int, t1: int) -> int:
    return bisect.bisect_right(times, t1) - bisect.bisect_left(times, t0)


def folded_counts(text: str) -> dict[str, int]:
    """Folded ``a;b;c COUNT`` lines (py-spy raw, flamekit collapsed) -> stack -> count."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out[stack] = out.get(stack, 0) + int(count)
    return out


def speedscope_samples(path: Path) -> int:
    data = json.loads(path.read_text())
    n = 0
    for prof in data.get("profiles", []):
        if prof.get("type") == "sampled":
            n += len(prof.get("samples", []))
    return n


def leaf_function(frame: str) -> str:
    """'light (split.py:30)' (py-spy) or 'light (/x/split.py:30)' (flamekit) -> 'light'."""
    return frame.split(" (", 1)[0].strip().rsplit(".", 1)[-1]


def pyspy_samples(rec: Recorder) -> int | None:
    """Samples py-spy says it took (its closing line), else the raw file's total."""
    if rec.fmt == "raw" and rec.out.exists():
        return sum(folded_counts(rec.out.read_text()).values())
    if rec.fmt == "speedscope" and rec.out.exists():
        return speedscope_samples(rec.out)
    m = re.search(r"Samples: (\d+)", rec.stderr)
    return int(m.group(1)) if m else None


# -- statistics -------------------------------------------------------------------------


def median(xs: Iterable[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def spread(xs: Sequence[float]) -> tuple[float, float]:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan"), float("nan")
    if len(xs) < 4:
        return xs[0], xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def fmt(x: float | None, spec: str = ".1f", unit: str = "") -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:{spec}}{unit}"


# -- the harness ------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"### {self.title}", ""]
        out.append("| " + " | ".join(self.columns) + " |")
        out.append("|" + "|".join("---" for _ in self.columns) + "|")
        for r in self.rows:
            out.append("| " + " | ".join(r) + " |")
        out.extend(["", *(f"- {n}" for n in self.notes)])
        return "\n".join(out).rstrip() + "\n"


class Bench:
    def __init__(
        self,
        settings: Settings,
        pythons: list[tuple[str, str]],
        tools: Tools,
        workdir: Path,
        log: Callable[[str], None],
    ) -> None:
        self.s = settings
        self.pythons = pythons  # (label, executable)
        self.tools = tools
        self.workdir = workdir
        self.log = log
        self.results: dict[str, object] = {}
        self.tables: dict[str, Table] = {}
        self.targets: dict[str, tuple[str, str, bool | None]] = {}  # id -> (value, need, met)
        self._n = 0
        self._work: dict[str, int] = {}

    def _out(self, suffix: str) -> Path:
        self._n += 1
        return self.workdir / f"run{self._n}{suffix}"

    def _configs(self) -> list[tuple[str, bool]]:
        return [(tool, nb) for tool in self.tools.available() for nb in (False, True)]

    @staticmethod
    def _mode(nb: bool) -> str:
        return "nonblocking" if nb else "pausing"

    # -- 1 + 2: slowdown, and rate / CPU at the same rates ------------------------------

    def work_for(self, python: str) -> int:
        if python not in self._work:
            out = subprocess.run(
                [python, str(DEEP), "--calibrate", str(min(0.5, self.s.work_s))],
                capture_output=True,
                text=True,
                check=True,
            )
            per_s = json.loads(out.stdout)["per_second"]
            self._work[python] = max(1000, int(per_s * self.s.work_s))
        return self._work[python]

    def timed_run(self, python: str, config: tuple[str, bool, float] | None) -> dict:
        """One self-timed run of the 50-deep target, optionally under a profiler.

        The profiler attaches while the target waits for "go"; its CPU is read at "go" and
        again when the target reports, so start-up is left out of the per-sample cost.
        """
        target = Target(python, DEEP, ["--depth", "50", "--work", str(self.work_for(python))])
        rec = None
        try:
            if config is not None:
                tool, nb, rate = config
                out = self._out(".fkt" if tool == FLAMEKIT else ".raw")
                rec = self.tools.start(tool, target.pid, out, rate, nb)
                rec.ready()
            time.sleep(self.s.settle_s)
            if rec is not None and not rec.running:
                rec.wait(1)
                raise RuntimeError(f"{rec.tool} exited before the run: {rec.stderr.strip()}")
            cpu0 = proc_cpu_s(rec.proc.pid) if rec else None
            t_go = time.monotonic_ns()
            target.send("go\n")
            res = target.read()
            t_done = time.monotonic_ns()
            cpu1 = proc_cpu_s(rec.proc.pid) if rec else None
            target.finish()
        finally:
            target.kill()
        row = {"elapsed": res["elapsed"], "target_cpu": res["cpu"]}
        if rec is None:
            return row
        rec.wait(30)
        window = (t_done - t_go) / 1e9
        samples = None
        if rec.status not in (0, None) and rec.tool == FLAMEKIT:
            self.log(f"  flamekit record exited {rec.status}: {rec.stderr.strip()[-300:]}")
        if rec.tool == FLAMEKIT and rec.out.exists():
            times, _, _, _ = fkt_sample_times(rec.out)
            samples = count_between(times, t_go, t_done)
        elif rec.tool == PYSPY and rec.out.exists():
            # py-spy writes no timestamps: the window's samples are those in spin(), where
            # the timed work runs (before "go" the target waits in readline). Its idle
            # filter alone kept them on 3.8+, but not on 2.7 and 3.6 non-blocking (3x the
            # rate: it counted the wait too).
            samples = sum(
                n
                for stack, n in folded_counts(rec.out.read_text()).items()
                if any(leaf_function(f) == "spin" for f in stack.split(";"))
            )
        row.update(
            window_s=window,
            samples=samples,
            recorder_cpu_s=(cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
            recorder_total_cpu_s=_rusage_cpu(rec.rusage),
            recorder_peak_rss_mb=rec.peak_rss_mb,
        )
        if rec.out.exists():
            rec.out.unlink()
        return row

    def measure_slowdown(self) -> None:
        s = self.s
        per_python: dict[str, dict] = {}
        for label, python in self.pythons:
            configs: list[tuple[str, bool, float] | None] = [None]
            configs += [(t, nb, r) for r in s.rates for t, nb in self._configs()]
            runs: dict[str, list[dict]] = {_key(c): [] for c in configs}
            self.log(f"slowdown/rate on {label}: {len(configs)} configs x {s.reps} rounds")
            for rep in range(s.reps):
                k = rep % len(configs)
                order = configs[k:] + configs[:k]  # A B A B, rotating who goes first
                for c in order:
                    runs[_key(c)].append(self.timed_run(python, c))
            per_python[label] = runs
        self.results["slowdown"] = per_python

        t = Table(
            "1. Target slowdown (50-deep CPU-bound target, self-timed)",
            ["python", "profiler", "mode", "rate Hz", "median slowdown", "IQR", "vs py-spy"],
        )
        t2 = Table(
            "2a. Effective rate and recorder CPU on the 50-deep CPU-bound target",
            [
                "python",
                "profiler",
                "mode",
                "rate Hz",
                "effective Hz",
                "% of requested",
                "recorder CPU us/sample",
                "CPU vs py-spy",
            ],
        )
        summary: dict[tuple, dict] = {}
        for label, runs in per_python.items():
            base = [r["elapsed"] for r in runs["base"]]
            for rate in s.rates:
                for tool, nb in self._configs():
                    rs = runs[_key((tool, nb, rate))]
                    slow = [100 * (r["elapsed"] / b - 1) for r, b in zip(rs, base)]
                    eff = [r["samples"] / r["window_s"] for r in rs if r.get("samples")]
                    us = [
                        1e6 * r["recorder_cpu_s"] / r["samples"]
                        for r in rs
                        if r.get("samples") and r.get("recorder_cpu_s") is not None
                    ]
                    summary[(label, tool, nb, rate)] = {
                        "slowdown_pct": median(slow),
                        "slowdown_iqr": spread(slow),
                        "effective_hz": median(eff),
                        "cpu_us_per_sample": median(us),
                    }
            for rate in s.rates:
                for tool, nb in self._configs():
                    m = summary[(label, tool, nb, rate)]
                    other = summary.get((label, PYSPY, nb, rate))
                    vs = "-"
                    cvs = "-"
                    if tool == FLAMEKIT and other is not None:
                        d = m["slowdown_pct"] - other["slowdown_pct"]
                        vs = f"{d:+.1f} pt"
                        cvs = _ratio(m["cpu_us_per_sample"], other["cpu_us_per_sample"])
                    lo, hi = m["slowdown_iqr"]
                    t.rows.append(
                        [
                            label,
                            tool,
                            self._mode(nb),
                            f"{rate:g}",
                            fmt(m["slowdown_pct"], "+.1f", "%"),
                            f"{fmt(lo, '+.1f')} .. {fmt(hi, '+.1f')}",
                            vs,
                        ]
                    )
                    t2.rows.append(
                        [
                            label,
                            tool,
                            self._mode(nb),
                            f"{rate:g}",
                            fmt(m["effective_hz"], ".0f"),
                            fmt(100 * m["effective_hz"] / rate, ".1f", "%"),
                            fmt(m["cpu_us_per_sample"], ".0f"),
                            cvs,
                        ]
                    )
            bmed = median(base)
            t.notes.append(
                f"{label}: unprofiled run {bmed:.2f} s (median of {len(base)}); slowdown is "
                "the median over rounds of (profiled / the same round's unprofiled) - 1"
            )
        t.notes.append(
            "vs py-spy: flamekit's slowdown minus py-spy's, same mode and rate (negative = "
            "flamekit slows the target less)"
        )
        t2.notes.append(
            "effective Hz: samples stamped inside the timed window / window length (py-spy, "
            "which writes no timestamps: its samples in spin(), the timed work); recorder "
            "CPU: the recorder's "
            "utime+stime (/proc/PID/stat) over the same window, per sample; start-up excluded"
        )
        self.tables["slowdown"] = t
        self.tables["rate"] = t2
        self.results["slowdown_summary"] = {"|".join(map(str, k)): v for k, v in summary.items()}
        self._slowdown_targets(summary)

    def _slowdown_targets(self, summary: dict[tuple, dict]) -> None:
        """Each target judged on every interpreter of the run: met only where all meet it
        (the primary one alone once hid a 96% rate on another)."""
        labels = [label for label, _ in self.pythons]
        top = max(self.s.rates)

        def get(py: str, tool: str, nb: bool, rate: float, what: str) -> float | None:
            m = summary.get((py, tool, nb, rate))
            return None if m is None else m[what]

        def judge(cells: list[tuple[str, bool | None]]) -> tuple[str, bool | None]:
            many = len(labels) > 1
            text = "; ".join(f"{py} {t}" if many else t for py, (t, _) in zip(labels, cells))
            oks = [ok for _, ok in cells]
            return text, (None if None in oks else all(oks))

        def nb_vs_pyspy(py: str) -> tuple[str, bool | None]:
            a = get(py, FLAMEKIT, True, top, "slowdown_pct")
            b = get(py, PYSPY, True, top, "slowdown_pct")
            if a is None or b is None:
                return f"{fmt(a, '+.1f', '%')} (no py-spy)", None
            return f"{a:+.1f}% vs {b:+.1f}% ({a - b:+.1f} pt)", a - b <= 1.0

        def pause_vs_pyspy(py: str) -> tuple[str, bool | None]:
            parts, ok = [], True
            for rate in self.s.rates:
                a = get(py, FLAMEKIT, False, rate, "slowdown_pct")
                b = get(py, PYSPY, False, rate, "slowdown_pct")
                if a is None or b is None:
                    parts.append(f"{rate:g} Hz: {fmt(a, '+.1f', '%')} (no py-spy)")
                    ok = None
                    continue
                parts.append(f"{rate:g} Hz: {a:+.1f}% vs {b:+.1f}%")
                ok = ok and a <= b
            return ", ".join(parts), ok

        def rate_1000(py: str) -> tuple[str, bool | None]:
            effs = [get(py, FLAMEKIT, nb, 1000.0, "effective_hz") for nb in (False, True)]
            if None in effs:
                return "n/a", None
            text = f"{effs[0] / 10:.1f}% pausing, {effs[1] / 10:.1f}% nonblocking"
            return text, min(effs) >= 990

        def cpu_1000(py: str) -> tuple[str, bool | None]:
            cpus = [get(py, FLAMEKIT, nb, 1000.0, "cpu_us_per_sample") for nb in (False, True)]
            if None in cpus:
                return "n/a", None
            return f"{cpus[0]:.0f} us pausing, {cpus[1]:.0f} us nonblocking", max(cpus) <= 150

        def nb_3pct(py: str) -> tuple[str, bool | None]:
            nb = get(py, FLAMEKIT, True, top, "slowdown_pct")
            return (f"{fmt(nb, '+.1f', '%')} at {top:g} Hz", None if nb is None else nb <= 3.0)

        rows = [
            ("nb_vs_pyspy", nb_vs_pyspy, "<= +1.0 pt"),
            ("pause_vs_pyspy", pause_vs_pyspy, "flamekit <= py-spy"),
        ]
        if 1000.0 in self.s.rates:
            rows += [("rate_1000", rate_1000, ">= 99%"), ("cpu_1000", cpu_1000, "<= 150 us")]
        rows.append(("nb_3pct", nb_3pct, "<= 3%"))
        for key, cell, needed in rows:
            text, ok = judge([cell(py) for py in labels])
            self.targets[key] = (text, needed, ok)

    # -- spin runs: rate sweep, scaling, size ------------------------------------------

    def spin_run(
        self,
        python: str,
        tool: str,
        rate: float,
        nb: bool,
        depth: int = 50,
        threads: int = 1,
        window: float | None = None,
        fmt_: str = "raw",
        keep: bool = False,
        script: Path = DEEP,
    ) -> dict:
        """A profiler on an always-spinning target; its CPU over a steady window after
        start-up, and what it wrote."""
        window = self.s.window_s if window is None else window
        settle = self.s.settle_s
        args = ["--depth", str(depth), "--threads", str(threads)] if script == DEEP else []
        target = Target(python, script, [*args, "--max-seconds", str(settle + window + 600)])
        suffix = {"raw": ".raw", "speedscope": ".json"}.get(fmt_, ".out")
        out = self._out(".fkt" if tool == FLAMEKIT else suffix)
        try:
            # No -d: py-spy's -d counts samples (rate x seconds), not seconds, so a py-spy
            # that falls behind would run on long after; both are stopped with SIGINT.
            rec = self.tools.start(tool, target.pid, out, rate, nb, None, fmt_, idle=True)
            rec.ready()
            time.sleep(settle)
            cpu0, t0 = proc_cpu_s(rec.proc.pid), time.monotonic_ns()
            time.sleep(window)
            cpu1, t1 = proc_cpu_s(rec.proc.pid), time.monotonic_ns()
            time.sleep(0.2)
            t_stop = time.monotonic_ns()
            if rec.running:
                rec.proc.send_signal(signal.SIGINT)
            rec.wait(60)
            tail = target.finish()
        finally:
            target.kill()
        row: dict = {
            "tool": tool,
            "rate": rate,
            "nonblocking": nb,
            "depth": depth,
            "threads": threads,
            "format": rec.fmt,
            "status": rec.status,
            "peak_rss_mb": rec.peak_rss_mb,
        }
        win = (t1 - t0) / 1e9
        cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        if tool == FLAMEKIT and out.exists():
            times, nthreads, size, total = fkt_sample_times(out)
            n = count_between(times, t0, t1)
            row.update(samples_total=total, bytes=size, threads_seen=nthreads)
            ticks = n / threads
        else:
            total = pyspy_samples(rec)
            row.update(samples_total=total, bytes=out.stat().st_size if out.exists() else None)
            # py-spy writes no timestamps: its samples are taken as spread evenly from its
            # launch (start-up included, which understates its rate slightly) to SIGINT.
            n = total * win / ((t_stop - rec.started_ns) / 1e9) if total else None
            ticks = n / threads if n else None
        row.update(
            window_s=win, window_samples=n, cpu_s=cpu, effective_hz=(ticks / win) if ticks else None
        )
        if cpu is not None and n:
            row["us_per_sample"] = 1e6 * cpu / n
            row["us_per_tick"] = 1e6 * cpu / ticks
        if rec.status not in (0, None):
            row["error"] = rec.stderr.strip()[-300:]
            self.log(f"  {tool} exited {rec.status}: {row['error']}")
        if script == SPLIT:
            lines = [json.loads(x) for x in tail.splitlines() if x.startswith("{")]
            if lines:
                row["truth"] = lines[-1]
        if keep:
            row["path"] = str(out)
        elif out.exists():
            out.unlink()
        return row

    def _interleaved(self, configs: list[dict], reps: int, python: str) -> list[list[dict]]:
        runs: list[list[dict]] = [[] for _ in configs]
        for rep in range(reps):
            k = rep % len(configs)
            for i in list(range(k, len(configs))) + list(range(k)):
                runs[i].append(self.spin_run(python, **configs[i]))
        return runs

    def measure_rate_sweep(self) -> None:
        label, python = self.pythons[0]
        configs = [
            {"tool": t, "rate": r, "nb": nb}
            for r in self.s.sweep
            for t in self.tools.available()
            for nb in (False, True)
        ]
        self.log(f"rate sweep on {label}: {len(configs)} configs x {self.s.sweep_reps}")
        runs = self._interleaved(configs, self.s.sweep_reps, python)
        t = Table(
            f"2b. Higher rates: effective rate and recorder CPU ({label}, 50-deep spinning target)",
            [
                "profiler",
                "mode",
                "rate Hz",
                "effective Hz",
                "% of requested",
                "us/sample",
                "recorder CPU %",
            ],
        )
        best: dict[tuple[str, bool], float] = {}
        summary = []
        for c, rs in zip(configs, runs):
            eff = median(r.get("effective_hz") or float("nan") for r in rs)
            us = median(r.get("us_per_sample") or float("nan") for r in rs)
            busy = median(100 * r["cpu_s"] / r["window_s"] for r in rs if r.get("cpu_s"))
            pct = 100 * eff / c["rate"]
            if pct >= 99:
                key = (c["tool"], c["nb"])
                best[key] = max(best.get(key, 0), c["rate"])
            summary.append({**c, "effective_hz": eff, "us_per_sample": us, "cpu_pct": busy})
            t.rows.append(
                [
                    c["tool"],
                    self._mode(c["nb"]),
                    f"{c['rate']:g}",
                    fmt(eff, ".0f"),
                    fmt(pct, ".1f", "%"),
                    fmt(us, ".0f"),
                    fmt(busy, ".0f", "%"),
                ]
            )
        for tool in self.tools.available():
            for nb in (False, True):
                hi = best.get((tool, nb))
                t.notes.append(
                    f"highest swept rate {tool} ({self._mode(nb)}) sustains at >= 99%: "
                    + (f"{hi:g} Hz" if hi else f"none above {max(self.s.rates):g} Hz")
                )
        t.notes.append("recorder CPU %: of one core, over the steady window")
        self.tables["rate_sweep"] = t
        self.results["rate_sweep"] = {
            "runs": runs,
            "summary": summary,
            "best": {f"{k[0]}|{k[1]}": v for k, v in best.items()},
        }

    def measure_scaling(self) -> None:
        label, python = self.pythons[0]
        shapes = [(d, 1) for d in self.s.depths] + [(50, n) for n in self.s.threads if n != 1]
        configs = [
            {"tool": t, "rate": 1000.0, "nb": False, "depth": d, "threads": n}
            for d, n in shapes
            for t in self.tools.available()
        ]
        self.log(f"scaling on {label}: {len(configs)} configs x {self.s.scaling_reps}")
        runs = self._interleaved(configs, self.s.scaling_reps, python)
        t = Table(
            f"3. Scaling: recorder CPU as depth and threads grow ({label}, 1000 Hz, pausing)",
            [
                "depth",
                "threads",
                "profiler",
                "effective ticks/s",
                "us/tick",
                "us/thread-sample",
                "us per frame",
                "vs py-spy (us/tick)",
            ],
        )
        summary = {}
        for c, rs in zip(configs, runs):
            summary[(c["depth"], c["threads"], c["tool"])] = {
                "effective_hz": median(r.get("effective_hz") or float("nan") for r in rs),
                "us_per_tick": median(r.get("us_per_tick") or float("nan") for r in rs),
                "us_per_sample": median(r.get("us_per_sample") or float("nan") for r in rs),
            }
        for (d, n, tool), m in summary.items():
            other = summary.get((d, n, PYSPY))
            vs = (
                _ratio(m["us_per_tick"], other["us_per_tick"])
                if tool == FLAMEKIT and other
                else "-"
            )
            t.rows.append(
                [
                    str(d),
                    str(n),
                    tool,
                    fmt(m["effective_hz"], ".0f"),
                    fmt(m["us_per_tick"], ".0f"),
                    fmt(m["us_per_sample"], ".1f"),
                    fmt(m["us_per_sample"] / d, ".2f"),
                    vs,
                ]
            )
        t.notes.append(
            "every thread spins 'depth' frames deep (the main thread too); a tick samples "
            "every thread; us per frame = us/thread-sample / depth; py-spy with --idle so "
            "that every thread's sample is counted; py-spy's window samples are its total "
            "spread evenly over -d (it writes no timestamps)"
        )
        self.tables["scaling"] = t
        self.results["scaling"] = {
            "runs": runs,
            "summary": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in summary.items()},
        }

    def measure_size(self) -> None:
        label, python = self.pythons[0]
        rows = []
        t = Table(
            f"4. Output size per sample ({label}, 1000 Hz, {self.s.size_s:g} s, pausing)",
            ["workload", "output", "samples", "bytes", "bytes/sample", "vs .fkt"],
        )
        for name, script in (("deep50", DEEP), ("split", SPLIT)):
            if name not in self.s.size_workloads:
                continue
            configs = [
                {
                    "tool": FLAMEKIT,
                    "rate": 1000.0,
                    "nb": False,
                    "window": self.s.size_s,
                    "keep": True,
                    "script": script,
                }
            ]
            if self.tools.pyspy:
                for f in ("raw", "speedscope"):
                    configs.append(
                        {
                            "tool": PYSPY,
                            "rate": 1000.0,
                            "nb": False,
                            "window": self.s.size_s,
                            "fmt_": f,
                            "script": script,
                        }
                    )
            runs = self._interleaved(configs, 1, python)
            fk = runs[0][0]
            fk_bps = fk["bytes"] / fk["samples_total"] if fk.get("samples_total") else None
            entries = [(".fkt (flamekit)", fk)]
            # flamekit's own exports of the same recording, for reference
            for to in ("speedscope", "collapsed"):
                dst = self._out(f".{to}")
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "flamekit",
                        "convert",
                        fk["path"],
                        "--to",
                        to,
                        "-o",
                        str(dst),
                    ],
                    check=True,
                    capture_output=True,
                )
                entries.append(
                    (
                        f"flamekit convert --to {to}",
                        {"bytes": dst.stat().st_size, "samples_total": fk["samples_total"]},
                    )
                )
                dst.unlink()
            Path(fk["path"]).unlink()
            for c, rs in zip(configs[1:], runs[1:]):
                entries.append((f"py-spy -f {c['fmt_']}", rs[0]))
            for what, r in entries:
                n, b = r.get("samples_total"), r.get("bytes")
                bps = b / n if b and n else None
                rows.append(
                    {
                        "workload": name,
                        "output": what,
                        "samples": n,
                        "bytes": b,
                        "bytes_per_sample": bps,
                    }
                )
                t.rows.append(
                    [
                        name,
                        what,
                        fmt(n, ",d") if n else "n/a",
                        fmt(b, ",d") if b else "n/a",
                        fmt(bps, ".2f"),
                        _ratio(bps, fk_bps),
                    ]
                )
        t.notes.append(
            ".fkt keeps every sample with its timestamp, thread and flags; py-spy's raw and "
            "speedscope outputs aggregate identical stacks (no time order); samples: all "
            "threads' samples including idle ones (py-spy with --idle)"
        )
        self.tables["size"] = t
        self.results["size"] = rows

    # -- 5: accuracy --------------------------------------------------------------------

    def accuracy_run(self, python: str, tool: str, rate: float, nb: bool) -> dict:
        r = self.spin_run(python, tool, rate, nb, window=self.s.accuracy_s, keep=True, script=SPLIT)
        path = Path(r.pop("path"))
        if tool == FLAMEKIT:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flamekit",
                    "convert",
                    str(path),
                    "--to",
                    "collapsed",
                    "-o",
                    "-",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        else:
            out = path.read_text()
        path.unlink()
        light = heavy = 0
        for stack, n in folded_counts(out).items():
            f = leaf_function(stack.rsplit(";", 1)[-1])
            if f == "light":
                light += n
            elif f == "heavy":
                heavy += n
        truth = r.get("truth") or {}
        tl, th = truth.get("light_cpu"), truth.get("heavy_cpu")
        r.update(
            light=light,
            heavy=heavy,
            measured_pct=100 * light / (light + heavy) if light + heavy else None,
            truth_pct=100 * tl / (tl + th) if tl and th else None,
        )
        return r

    def measure_accuracy(self) -> None:
        rows = []
        t = Table(
            "5. Accuracy: share of `light` in a 25/75 light/heavy CPU split",
            [
                "python",
                "profiler",
                "mode",
                "rate Hz",
                "samples",
                "measured %",
                "self-timed truth %",
                "error vs 25 (pt)",
            ],
        )
        worst = 0.0
        for label, python in self.pythons:
            configs = [
                (tool, r, nb)
                for r in self.s.accuracy_rates
                for tool in self.tools.available()
                for nb in (False, True)
            ]
            runs: list[list[dict]] = [[] for _ in configs]
            self.log(f"accuracy on {label}: {len(configs)} configs x {self.s.accuracy_reps}")
            for rep in range(self.s.accuracy_reps):
                k = rep % len(configs)
                for i in list(range(k, len(configs))) + list(range(k)):
                    runs[i].append(self.accuracy_run(python, *configs[i]))
            for (tool, rate, nb), rs in zip(configs, runs):
                tot = {"light": sum(r["light"] for r in rs), "heavy": sum(r["heavy"] for r in rs)}
                n = tot["light"] + tot["heavy"]
                pct = 100 * tot["light"] / n if n else float("nan")
                truth = median(r["truth_pct"] or float("nan") for r in rs)
                err = pct - 25.0
                if tool == FLAMEKIT and err == err:
                    worst = max(worst, abs(err))
                rows.append(
                    {
                        "python": label,
                        "tool": tool,
                        "rate": rate,
                        "nonblocking": nb,
                        "samples": n,
                        "measured_pct": pct,
                        "truth_pct": truth,
                        "runs": rs,
                    }
                )
                t.rows.append(
                    [
                        label,
                        tool,
                        self._mode(nb),
                        f"{rate:g}",
                        f"{n:,}",
                        fmt(pct, ".1f"),
                        fmt(truth, ".1f"),
                        fmt(err, "+.1f"),
                    ]
                )
        t.notes.append(
            "light and heavy run the same inline loop for n and 3n iterations, n drawn at "
            "random per round; the target's own thread-CPU clock gives the 'self-timed "
            "truth'; measured = light / (light + heavy) samples, summed over the rounds"
        )
        self.tables["accuracy"] = t
        self.results["accuracy"] = rows
        self.targets["accuracy"] = (f"worst flamekit error {worst:.1f} pt", "<= 2 pt", worst <= 2.0)

    # -- 6: convert ----------------------------------------------------------------------

    def measure_convert(self) -> None:
        sys.path.insert(0, str(HERE))
        import convert_bench  # bench/convert_bench.py (helper-4's)

        from flamekit.convert.base import formats

        s = self.s
        trace = (
            Path(tempfile.gettempdir())
            / "flamekit-bench"
            / (f"synthetic-{s.convert_samples}-{s.convert_stacks}-8.fkt")
        )
        trace.parent.mkdir(exist_ok=True)
        self.log(f"convert: {trace}")
        convert_bench.build_trace(trace, s.convert_samples, s.convert_stacks, 8)
        names = list(formats())
        reps = 1 if s.name == "smoke" else 3
        runs: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
        for rep in range(reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                out = self._out(f".{name}")
                # --idle: every sample is converted (a tenth are idle), so samples/s is honest
                runs[name].append(convert_bench.run_one(trace, name, out, ["--idle"]))
                if out.exists():
                    out.unlink()
        t = Table(
            f"6. Convert throughput ({s.convert_samples:,} samples, {s.convert_stacks:,} "
            "stacks, 8 threads, synthetic, all converted with --idle)",
            ["format", "median wall s", "samples/s", "peak RSS MB", "exit"],
        )
        rows = []
        for name, rs in runs.items():
            wall = median(r[0] for r in rs)
            rss = max(r[1] for r in rs)
            rc = max(r[2] for r in rs)
            rows.append(
                {
                    "format": name,
                    "wall_s": wall,
                    "samples_per_s": s.convert_samples / wall,
                    "peak_rss_mb": rss,
                    "exit": rc,
                }
            )
            t.rows.append(
                [
                    name,
                    fmt(wall, ".2f"),
                    fmt(s.convert_samples / wall, ",.0f"),
                    fmt(rss, ".0f"),
                    str(rc),
                ]
            )
        t.notes.append(
            "each conversion is a whole `python -m flamekit convert` process (load, "
            f"symbolize, write), timed by bench/convert_bench.py; {reps} round(s), "
            "formats interleaved; issue #4's budget: 10 s and 500 MB"
        )
        self.tables["convert"] = t
        self.results["convert"] = rows

    # -- 7: memory -----------------------------------------------------------------------

    def measure_memory(self) -> None:
        """flamekit (pausing) and py-spy (--nonblocking, so both can watch one target at
        once) record the same 50-deep spinning target at 1000 Hz; RSS sampled over time."""
        label, python = self.pythons[0]
        dur = self.s.memory_s
        self.log(f"memory on {label}: {dur:g} s at 1000 Hz")
        target = Target(python, DEEP, ["--depth", "50", "--max-seconds", str(dur + 120)])
        recs = []
        series: dict[str, list[tuple[float, float]]] = {}
        try:
            recs.append(self.tools.start(FLAMEKIT, target.pid, self._out(".fkt"), 1000.0, False))
            if self.tools.pyspy:
                recs.append(
                    self.tools.start(
                        PYSPY, target.pid, self._out(".raw"), 1000.0, True, None, "raw"
                    )
                )
            for r in recs:
                series[r.tool] = []
            t0 = time.monotonic()
            while any(r.running for r in recs):
                now = time.monotonic() - t0
                for r in recs:
                    rss = proc_rss_mb(r.proc.pid)
                    if rss is not None and r.running:
                        series[r.tool].append((now, rss))
                if now >= dur:
                    break
                time.sleep(min(self.s.memory_every_s, max(0.0, dur - now)))
            for r in recs:
                if r.running:
                    r.proc.send_signal(signal.SIGINT)
            for r in recs:
                r.wait(60)
        finally:
            target.kill()
        t = Table(
            f"7. Recorder memory over a {dur:g} s recording at 1000 Hz ({label})",
            [
                "profiler",
                "mode",
                "samples",
                "RSS after start-up MB",
                "RSS at end MB",
                "peak RSS MB",
                "growth since MB",
                "flat",
            ],
        )
        rows = []
        for r in recs:
            pts = series.get(r.tool) or []
            if r.tool == FLAMEKIT and r.out.exists():
                _, _, _, n = fkt_sample_times(r.out)
            else:
                n = pyspy_samples(r)
            # the reference point: past start-up (10% of a long run, half of a short one)
            ref_t = max(0.1 * dur, min(0.5 * dur, 10.0))
            early = next((v for tt, v in pts if tt >= ref_t), pts[-1][1] if pts else None)
            last = pts[-1][1] if pts else None
            peak = max([v for _, v in pts] + [r.peak_rss_mb])
            growth = last - early if last is not None and early is not None else None
            flat = growth is not None and growth <= max(2.0, 0.05 * early)
            rows.append(
                {
                    "tool": r.tool,
                    "samples": n,
                    "series": pts,
                    "early_mb": early,
                    "end_mb": last,
                    "peak_mb": peak,
                    "growth_mb": growth,
                    "flat": flat,
                    "status": r.status,
                }
            )
            t.rows.append(
                [
                    r.tool,
                    "nonblocking" if r.tool == PYSPY else "pausing",
                    fmt(n, ",d") if n else "n/a",
                    fmt(early, ".1f"),
                    fmt(last, ".1f"),
                    fmt(peak, ".1f"),
                    fmt(growth, "+.1f"),
                    "yes" if flat else "NO",
                ]
            )
            if r.out.exists():
                r.out.unlink()
        t.notes.append(
            f"VmRSS every {self.s.memory_every_s:g} s; peak includes wait4's ru_maxrss; flat = "
            "growth from the reference point (10% into a long run, half-way into a short one) to the end <= max(2 MB, 5%); both recorders watch "
            "the same target at once (py-spy non-blocking, since only one can pause it)"
        )
        self.tables["memory"] = t
        self.results["memory"] = rows
        fk = next((x for x in rows if x["tool"] == FLAMEKIT), None)
        if fk is not None:
            self.targets["memory_flat"] = (
                f"{fmt(fk['early_mb'], '.1f')} -> {fmt(fk['end_mb'], '.1f')} MB "
                f"(peak {fmt(fk['peak_mb'], '.1f')})",
                "flat",
                fk["flat"],
            )

    # -- the report ----------------------------------------------------------------------

    def target_table(self) -> Table:
        t = Table("Targets", ["target", "flamekit (this run)", "needed", "met"])
        for key, text in TARGET_TEXT.items():
            if key not in self.targets:
                continue
            value, need, met = self.targets[key]
            t.rows.append(
                [text, value, need, "n/a" if met is None else ("yes" if met else "MISSED")]
            )
        return t


def _key(c: tuple[str, bool, float] | None) -> str:
    return "base" if c is None else f"{c[0]}|{c[1]}|{c[2]:g}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or a != a or b != b or not b:
        return "-"
    return f"{a / b:.2f}x"


def _rusage_cpu(usage: object | None) -> float | None:
    if usage is None:
        return None
    return usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]


def find_pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    return shutil.which("py-spy")


def pyenv_python(version: str) -> str:
    """'3.12' -> the pyenv interpreter; a path is taken as it is."""
    if os.sep in version:
        return version
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            root = str(Path.home() / ".pyenv")
    found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}"))
    if not found:
        raise SystemExit(f"bench: no CPython {version} under {root}/versions")
    return str(found[-1])


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
        "recorder_python": platform.python_version(),
    }


def python_version(exe: str) -> str:
    out = subprocess.run(
        [exe, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="every measure, in seconds")
    mode.add_argument("--full", action="store_true", help="the real benchmark (~40 min)")
    ap.add_argument("--only", help=f"comma-separated measures: {','.join(MEASURES)}")
    ap.add_argument(
        "--python",
        action="append",
        help="target interpreter: a version under pyenv (3.12) or a path; "
        "repeat for more (the first is used for the single-python measures); "
        "default --full: 3.12, 3.11, 3.8; --smoke: this interpreter",
    )
    ap.add_argument("--no-pyspy", action="store_true", help="flamekit only")
    ap.add_argument("--reps", type=int, help="rounds for slowdown (default: the preset's)")
    ap.add_argument(
        "--rates", help="comma-separated Hz for slowdown and rate (default: the preset's)"
    )
    ap.add_argument("--memory-seconds", type=float, help="length of the memory recording")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    ap.add_argument("--markdown", type=Path, help="write the tables here too")
    args = ap.parse_args(argv)

    settings = SMOKE if args.smoke else FULL
    if args.reps:
        settings.reps = args.reps
    if args.rates:
        settings.rates = tuple(float(r) for r in args.rates.split(","))
    if args.memory_seconds:
        settings.memory_s = args.memory_seconds
    only = [m.strip() for m in (args.only or ",".join(MEASURES)).split(",") if m.strip()]
    bad = [m for m in only if m not in MEASURES]
    if bad:
        ap.error(f"unknown measure(s) {', '.join(bad)}; choose from {', '.join(MEASURES)}")
    if args.python:
        pythons = [
            (v if os.sep not in v else python_version(v), pyenv_python(v)) for v in args.python
        ]
    elif args.smoke:
        pythons = [(platform.python_version(), sys.executable)]
    else:
        pythons = [(v, pyenv_python(v)) for v in ("3.12", "3.11", "3.8")]
    pythons = [(python_version(exe), exe) for _, exe in pythons]
    tools = Tools(None if args.no_pyspy else find_pyspy())

    def log(msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    info = machine()
    info["targets"] = [v for v, _ in pythons]
    info["pyspy"] = (
        subprocess.run([tools.pyspy, "--version"], capture_output=True, text=True).stdout.strip()
        if tools.pyspy
        else None
    )
    info["mode"] = settings.name
    log(
        f"{settings.name}: {', '.join(only)}; targets {', '.join(info['targets'])}; "
        f"py-spy: {info['pyspy'] or 'not installed'}"
    )
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flamekit-bench-") as tmp:
        bench = Bench(settings, pythons, tools, Path(tmp), log)
        steps = {
            "slowdown": bench.measure_slowdown,
            "rate": bench.measure_rate_sweep,
            "scaling": bench.measure_scaling,
            "size": bench.measure_size,
            "accuracy": bench.measure_accuracy,
            "convert": bench.measure_convert,
            "memory": bench.measure_memory,
        }
        for m in MEASURES:
            if m == "slowdown" and "rate" in only:
                steps[m]()  # the rate table at 100/1000 Hz comes from the slowdown runs
            elif m in only:
                steps[m]()
    info["seconds"] = round(time.monotonic() - t_start, 1)
    info["loadavg_end"] = os.getloadavg()

    head = [
        f"## flamekit vs py-spy ({settings.name}, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}, load "
        f"{' '.join(f'{x:.2f}' for x in info['loadavg'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in info['loadavg_end'])} at end",
        f"- targets: CPython {', '.join(info['targets'])}; recorder: flamekit on CPython "
        f"{info['recorder_python']}; {info['pyspy'] or 'py-spy not installed'}",
        f"- command: python bench/run.py {' '.join(argv if argv is not None else sys.argv[1:])}"
        f" ({info['seconds']:.0f} s)",
        "",
    ]
    order = ["slowdown", "rate", "rate_sweep", "scaling", "size", "accuracy", "convert", "memory"]
    body = [bench.tables[k].markdown() for k in order if k in bench.tables]
    text = "\n".join(head) + "\n" + "\n".join([bench.target_table().markdown(), *body])
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "results": bench.results, "targets": bench.targets},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
