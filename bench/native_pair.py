"""Steady-window recorder CPU per sample with --native: flamekit vs py-spy, paired and
alternating. CPU from /proc/PID/stat between 1.5 s and 4.5 s of a 6 s recording; samples
in that window (flamekit: from the trace's times; py-spy: its total x 3/6, it keeps its rate)."""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # noqa: E402
from flamekit.trace.model import load

PY = "/root/.pyenv/versions/3.12.1/bin/python3.12"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PYSPY = os.environ.get("PYSPY", "py-spy")
EXT = os.environ.get("SPINEXT_DIR", "/tmp/e312")  # spinext built for 3.12 (tests/native_ext.py)
TICK = os.sysconf("SC_CLK_TCK")
target = subprocess.Popen(
    [PY, os.path.join(ROOT, "tests/targets/native_spin.py"), EXT, "900"],
    stdout=subprocess.DEVNULL,
)
time.sleep(1.5)


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


for rate in (100, 1000):
    res = {"flamekit": [], "py-spy": []}
    for rnd in range(int(os.environ.get("ROUNDS", "4"))):
        for k in ["flamekit", "py-spy"] if rnd % 2 == 0 else ["py-spy", "flamekit"]:
            f = tempfile.mktemp()
            common = ["record", "--native", "-r", str(rate), "-d", "6", "-p", str(target.pid)]
            if k == "flamekit":
                cmd = [sys.executable, "-m", "flamekit", *common, "-q", "-o", f]
            else:
                cmd = [PYSPY, *common, "-f", "raw", "-o", f]
            t0 = time.monotonic_ns()
            p = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stderr=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1.5)
            c1, t1 = cpu(p.pid), time.monotonic_ns()
            time.sleep(3.0)
            c2, t2 = cpu(p.pid), time.monotonic_ns()
            o, e = p.communicate()
            if k == "flamekit":
                tr = load(f)
                lo, hi = t1 - tr.header.start_monotonic_ns, t2 - tr.header.start_monotonic_ns
                n = sum(1 for t in tr.times if lo <= t < hi)
            else:
                n = int(re.search(r"Samples: (\d+)", o + e).group(1)) * (t2 - t1) / 6e9
            res[k].append(((c2 - c1) / n * 1e6, n / ((t2 - t1) / 1e9)))
            os.unlink(f)
    for k, v in res.items():
        print(
            f"{rate} Hz {k}: median CPU/sample {statistics.median(x for x, _ in v):.0f} us; effective {statistics.median(h for _, h in v):.0f} Hz; rounds {[round(x) for x, _ in v]}",
            flush=True,
        )
target.kill()
