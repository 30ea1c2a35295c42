"""Synthetic traces for tests, examples and benchmarks.

The code records carry real line tables compiled by the running interpreter, so a
synthetic trace symbolizes like a recorded one; only the stacks and times are invented.
"""

from __future__ import annotations

import random
import sys
import time
import types
from typing import BinaryIO

from flamekit import __version__
from flamekit.codeformat import format_for_version
from flamekit.trace import records as R
from flamekit.trace.writer import TraceWriter

_SOURCE = """
def handle_request(req):
    data = parse(req)
    return render(data)

def parse(text):
    out = []
    for part in text.split(","):
        out.append(part.strip())
    return out

def render(items):
    return "".join(items)

def compute(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def wait_for_work(queue):
    return queue.get()
"""


def _code_objects() -> list[types.CodeType]:
    module = compile(_SOURCE, "app/service.py", "exec")
    return [c for c in module.co_consts if isinstance(c, types.CodeType)]


def _linetable(code: types.CodeType) -> bytes:
    return code.co_linetable if sys.version_info >= (3, 10) else code.co_lnotab


def write_synthetic(
    out: BinaryIO,
    *,
    samples: int = 1000,
    stacks: int = 50,
    threads: int = 2,
    depth: int = 8,
    rate_hz: float = 1000.0,
    seed: int = 0,
    idle_share: float = 0.1,
    processes: int = 1,
    first_pid: int = 4242,
) -> None:
    """Write a complete trace of ``samples`` samples over ``stacks`` stacks and ``threads``.

    ``processes`` > 1 makes it a prefork tree: pid ``first_pid`` (4242) and children
    4342, 4442, ... of the same command line, thread ``t`` in process ``t % processes`` (so ``threads``
    should be at least ``processes``); the children exit one by one at the end."""
    rng = random.Random(seed)
    fmt = format_for_version(*sys.version_info[:2])
    start = time.monotonic_ns()
    header = R.Header(
        __version__,
        time.time_ns(),
        start,
        rate_hz,
        4242,
        ("python3", "app/service.py"),
        sys.version.split()[0],
        "synthetic",
        "6.1.0",
        {"pausing": True},
    )
    w = TraceWriter(out, header)
    cmdline = ("python3", "app/service.py")
    version = sys.version.split()[0]
    pids = [first_pid + 100 * k for k in range(max(1, processes))]
    extra = (version, -1_000_000) if processes > 1 else ()
    w.write(R.Process(first_pid, 1, cmdline, 0, *extra))
    for pid in pids[1:]:
        w.write(R.Process(pid, first_pid, cmdline, 0, version, 0))
    base = _code_objects()
    codes = []
    ref = 0
    # Many distinct functions: reuse the real line tables under invented names/files.
    for i in range(max(len(base), stacks // 4 + 4)):
        c = base[i % len(base)]
        name = c.co_name if i < len(base) else f"{c.co_name}_{i}"
        fname = "app/service.py" if i < len(base) else f"app/mod{i % 37}.py"
        ref += 1
        w.write(
            R.Code(
                ref,
                4242,
                0x7F0000000000 + 0x100 * i,
                name,
                getattr(c, "co_qualname", None) and name,
                fname,
                c.co_firstlineno,
                _linetable(c),
                fmt,
            )
        )
        codes.append((ref, len(c.co_code)))
    for t in range(threads):
        pid = pids[t % len(pids)]
        w.write(
            R.Thread(
                t,
                pid,
                4242 + t if len(pids) == 1 else pid + t // len(pids),
                139_000_000 + t,
                "MainThread" if t < len(pids) else f"worker-{t}",
                0,
            )
        )
    shapes = []
    for _ in range(stacks):
        d = rng.randint(1, depth)
        frames = []
        for _ in range(d):
            ref_, ncode = rng.choice(codes)
            frames.append((ref_, 2 * rng.randrange(max(1, ncode // 2))))
        shapes.append(tuple(frames))
    weights = [1.0 / (i + 1) for i in range(stacks)]  # a few hot stacks, a long tail
    picks = rng.choices(range(stacks), weights=weights, k=samples)
    period = int(1e9 / rate_hz)
    t_ns = start
    for i, s in enumerate(picks):
        thread = i % threads
        if thread == 0:
            t_ns += period + rng.randint(-period // 50, period // 50)
        else:
            t_ns += rng.randint(1000, 5000)
        idle = rng.random() < idle_share
        w.sample(
            t_ns, thread, w.stack_id(shapes[s]), gil=not idle and thread == i % threads, idle=idle
        )
        if i % 4096 == 0:
            w.tick()
    for k, pid in enumerate(pids[1:]):
        w.write(R.ProcessEnd(pid, t_ns + k, "exited", 0))
    w.close("duration", end_ns=t_ns + period)
