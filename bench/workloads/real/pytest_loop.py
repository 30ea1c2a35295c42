"""pytest (from PyPI) running networkx's own test suite (shipped inside networkx's wheel,
in the same venv) over and over in one process. A unit is one test run.

Usage: python pytest_loop.py [--max-seconds S]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import networkx  # noqa: E402
import pytest  # noqa: E402

#: Pure-Python parts of networkx's suite (the tests that need numpy/scipy skip themselves).
SUITES = (
    "algorithms/shortest_paths/tests",
    "algorithms/tests/test_dag.py",
    "algorithms/tests/test_cycles.py",
    "algorithms/tests/test_simple_paths.py",
    "classes/tests/test_graph.py",
    "classes/tests/test_digraph.py",
)


class Count:
    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            common.done()


def main():
    root = os.path.dirname(networkx.__file__)
    paths = [os.path.join(root, s) for s in SUITES if os.path.exists(os.path.join(root, s))]
    args = ["-q", "-s", "-p", "no:cacheprovider", "--import-mode=importlib", "-W", "ignore"]
    args += ["--rootdir", root, *paths]
    plugin = Count()

    def step():
        pytest.main(args, plugins=[plugin])

    common.run(step, common.max_seconds_arg(sys.argv))


if __name__ == "__main__":
    main()
