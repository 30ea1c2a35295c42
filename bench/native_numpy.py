"""numpy under ``record --native`` beside ``py-spy record --native``: does flamekit see the
same C functions in the same shares? (issue 16's numpy proof)

One numpy program (``workloads/native/numpy_mix.py``: sort, matrix product, cumulative
sum, unique, OpenBLAS held to one thread) runs from its own venv (numpy from PyPI,
``real_venvs.py``); the two recorders take turns on that one process, alternating which
goes first, ROUNDS rounds of SECONDS each. Both attach with ptrace, so they cannot record
the very same instants; they record the same run, in windows a few seconds apart.

Printed: each function's share of the samples as the innermost frame (its self time),
for the top functions by flamekit's count, both tools' shares and the difference in
points, and the same per object (numpy's, OpenBLAS, libc). Names are compared as
py-spy prints C++ ones: no return type, no argument list, no compiler clone suffix.

    PYSPY=/path/to/py-spy python bench/native_numpy.py [--rate 200] [--rounds 4]
        [--seconds 4] [--json out.json]
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
sys.path.insert(0, str(ROOT / "bench"))

import real_venvs  # noqa: E402

WORKLOAD = ROOT / "bench" / "workloads" / "native" / "numpy_mix.py"
PY312 = next(iter(sorted(Path("/root/.pyenv/versions").glob("3.12.*/bin/python3.12"))), None)


def plain_name(frame: str) -> str:
    """A native frame's function as py-spy prints it: ``name<targs>``, with no return
    type, argument list or ``[clone ...]``; the library mark dropped."""
    frame = re.sub(r" \[[^\[\]]*\]$", "", frame.strip())  # flamekit's " [lib]"
    frame = re.sub(r" \((?:[^()]*/)?[^()/]*\.so[^()]*\)$", "", frame)  # py-spy's " (lib)"
    frame = re.sub(r"( \[clone [^\]]*\])+$", "", frame)
    frame = re.sub(r"(\.(?:part|constprop|isra|cold|lto_priv)\.\d+)+$", "", frame)
    depth = 0
    cut = len(frame)
    for i in range(len(frame) - 1, -1, -1):  # a trailing argument list, at depth 0
        c = frame[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                cut = i
                break
        elif depth == 0 and c not in " const&":
            break
    if frame.endswith((")", ") const")) and cut < len(frame):
        frame = frame[:cut]
    depth = 0
    for i in range(len(frame) - 1, -1, -1):  # a return type: text before a space at depth 0
        c = frame[i]
        if c in ">)":
            depth += 1
        elif c in "<(":
            depth -= 1
        elif c == " " and depth == 0 and not frame[:i].endswith("operator"):
            return frame[i + 1 :]
    return frame


def key(frame: str) -> str:
    """What two demanglers agree on: the name without template arguments (they spell
    a function-pointer argument differently); instantiations pool alike on both sides."""
    name = plain_name(frame)
    out, depth = [], 0
    for c in name.replace("operator<<", "operator\0").replace("operator<", "operator\1"):
        depth += c == "<"
        if depth == 0:
            out.append(c)
        depth -= c == ">" and depth > 0
    return "".join(out).replace("\0", "<<").replace("\1", "<")


def leaves(collapsed: str) -> tuple[Counter[str], Counter[str], int, Counter[str]]:
    """Counts of the innermost frame, by function (:func:`key`) and by object; the total;
    per object, the innermost frames left unnamed (an address)."""
    fns: Counter[str] = Counter()
    objs: Counter[str] = Counter()
    unnamed: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        leaf = stack.split(";")[-1]
        total += int(n)
        m = re.search(r"\[([^\[\]]+)\]$", leaf) or re.search(r"\(([^()]*\.so[^()]*)\)$", leaf)
        obj = os.path.basename(m.group(1)) if m else "python"
        fns[f"{key(leaf)} [{obj}]"] += int(n)
        objs[obj] += int(n)
        if re.match(r"0x[0-9a-f]+ |\S+\+0x[0-9a-f]+ ", leaf):
            unnamed[obj] += int(n)
    return fns, objs, total, unnamed


def record(tool: str, pid: int, rate: int, seconds: float, out: Path, pyspy: str) -> str:
    if tool == "flamekit":
        cmd = [sys.executable, "-m", "flamekit", "record", "-q", "--native", "-r", str(rate),
               "-d", str(seconds), "-p", str(pid), "-o", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        folded = out.with_suffix(".txt")
        subprocess.run([sys.executable, "-m", "flamekit", "convert", "--to", "collapsed",
                        "-o", str(folded), str(out)], check=True, cwd=ROOT)  # fmt: skip
        return folded.read_text()
    cmd = [pyspy, "record", "--native", "-r", str(rate), "-d", str(int(seconds)), "-p",
           str(pid), "-f", "raw", "-o", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_text()


def shares(counts: Counter[str], total: int) -> dict[str, float]:
    return {k: 100 * v / total for k, v in counts.items()} if total else {}


def run(rate: int, rounds: int, seconds: float, pyspy: str | None, python: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    target = subprocess.Popen([python, str(WORKLOAD)], env=env, stdout=subprocess.DEVNULL)
    tools = ["flamekit", "py-spy"] if pyspy else ["flamekit"]
    fns = {t: Counter() for t in tools}
    objs = {t: Counter() for t in tools}
    unnamed = {t: Counter() for t in tools}
    totals = dict.fromkeys(tools, 0)
    texts: dict[str, list[str]] = {t: [] for t in tools}
    try:
        time.sleep(2.0)  # imported, arrays built
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(rounds):
                for tool in tools if rnd % 2 == 0 else tools[::-1]:
                    out = Path(tmp) / f"{tool}-{rnd}.{'fkt' if tool == 'flamekit' else 'txt'}"
                    text = record(tool, target.pid, rate, seconds, out, pyspy or "")
                    f, o, n, nm = leaves(text)
                    unnamed[tool] += nm
                    fns[tool] += f
                    objs[tool] += o
                    totals[tool] += n
                    texts[tool].append(text)
    finally:
        target.kill()
        target.wait()
    return {
        "rate": rate, "rounds": rounds, "seconds": seconds, "totals": totals,
        "functions": {t: shares(fns[t], totals[t]) for t in tools},
        "objects": {t: shares(objs[t], totals[t]) for t in tools},
        "unnamed": {t: dict(unnamed[t]) for t in tools},
        "flamekit_collapsed": texts["flamekit"],
    }  # fmt: skip


def table(res: dict, top: int = 5) -> list[tuple[str, float, float | None]]:
    """The top native functions by flamekit's share, in objects both tools name (less than
    5% of either's innermost frames there left as addresses: py-spy reads .dynsym alone,
    so Debian's libc, whose malloc internals only .symtab names, is compared as a whole
    object instead): (function [object], flamekit %, py-spy % or None)."""
    fk = res["functions"]["flamekit"]
    ps = res["functions"].get("py-spy")

    def named_by_all(obj: str) -> bool:
        return obj != "python" and all(
            res["unnamed"][t].get(obj, 0) < 0.05 * res["objects"][t].get(obj, 0) / 100
            * res["totals"][t] for t in res["unnamed"]
        )  # fmt: skip

    named = [
        k for k in sorted(fk, key=fk.get, reverse=True)
        if named_by_all(k.rsplit(" [", 1)[1][:-1]) and not re.match(r"0x|\S+\+0x", k)
    ]  # fmt: skip
    return [(k, fk[k], None if ps is None else ps.get(k, 0.0)) for k in named[:top]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--python", default=str(PY312) if PY312 else None)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    minor = ".".join(subprocess.run([args.python, "-c", "import sys; print(*sys.version_info[:2])"],
                                    capture_output=True, text=True, check=True).stdout.split())  # fmt: skip
    python = real_venvs.venv_python("numpy", args.python, minor)
    pyspy = os.environ.get("PYSPY") or None
    res = run(args.rate, args.rounds, args.seconds, pyspy, python)
    print(f"samples: {res['totals']}")
    print(f"{'function (self)':70} flamekit  py-spy  diff")
    for name, a, b in table(res, 8):
        diff = "" if b is None else f"{a - b:+6.1f}"
        print(f"{name[:70]:70} {a:7.1f}% {'' if b is None else f'{b:6.1f}%'} {diff}")
    print(f"{'object (self)':70} flamekit  py-spy")
    for obj, a in sorted(res["objects"]["flamekit"].items(), key=lambda kv: -kv[1])[:6]:
        b = res["objects"].get("py-spy", {}).get(obj)
        print(f"{obj[:70]:70} {a:7.1f}% {'' if b is None else f'{b:6.1f}%'}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in res.items()
                                               if k != "flamekit_collapsed"}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
