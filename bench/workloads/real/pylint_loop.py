"""pylint (from PyPI, in its own venv) linting a fixed source tree, one file at a time,
round and round: an AST-heavy program whose stacks change all the time. The work counted
is bytes of source linted, so that a window's rate does not depend on which files (small
or large) fell into it.

Usage: python pylint_loop.py --tree DIR [--max-seconds S]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from pylint.lint import Run  # noqa: E402
from pylint.reporters import CollectingReporter  # noqa: E402


def main():
    tree = common.arg(sys.argv, "--tree")
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs if f.endswith(".py")
    )
    rc = os.path.join(tree, "empty-pylintrc")
    open(rc, "w").close()
    state = {"i": 0}

    def step():
        path = files[state["i"] % len(files)]
        state["i"] += 1
        args = ["--rcfile", rc, "--persistent=n", "--reports=n", "--score=n", "-j", "1", path]
        Run(args, reporter=CollectingReporter(), exit=False)
        common.done(os.path.getsize(path))

    common.run(step, common.max_seconds_arg(sys.argv))


if __name__ == "__main__":
    main()
