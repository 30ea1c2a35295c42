"""sympy (from PyPI, in its own venv): series, integrals, simplification, factoring and
solving in turn, sympy's cache cleared before each task so every one computes afresh.

The tasks differ in cost by 10x and more, so a task is counted by its weight: its own
time in the first lap (the warm-up, before the workload says it is ready), in
microseconds; a window's rate then does not depend on which tasks fell into it.

Usage: python sympy_loop.py [--max-seconds S]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import sympy  # noqa: E402
from sympy.core.cache import clear_cache  # noqa: E402

x, y = sympy.symbols("x y")


def tasks(k):
    """Seven tasks of sympy work (the same every lap: k is fixed)."""
    return [
        lambda: sympy.series(sympy.sin(x) * sympy.exp(k * x), x, 0, 10),
        lambda: sympy.integrate(x ** (k % 3 + 1) * sympy.exp(x) * sympy.sin(x), x),
        lambda: sympy.simplify(
            (x ** (k + 2) - 1) / (x - 1) + sympy.cos(x) ** 2 + sympy.sin(x) ** 2
        ),
        lambda: sympy.factor(x ** (k % 8 + 8) - y ** (k % 8 + 8)),
        lambda: sympy.solve([x + k * y - 3, x * y - k], [x, y]),
        lambda: sympy.expand((x + y + k) ** 7),
        lambda: sympy.limit((sympy.sin(k * x) - k * x) / x**3, x, 0),
    ]


def main():
    ts = tasks(2)
    weights = []
    for task in ts:  # the first lap: warm-up and weights
        clear_cache()
        t0 = time.perf_counter()
        task()
        weights.append(max(1, int(1e6 * (time.perf_counter() - t0))))
    state = {"i": 0}

    def step():
        i = state["i"] % len(ts)
        state["i"] += 1
        clear_cache()
        ts[i]()
        common.done(weights[i])

    common.run(step, common.max_seconds_arg(sys.argv))


if __name__ == "__main__":
    main()
