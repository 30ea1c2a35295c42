"""Recorder target: one code object freed and another made at the same address, both run
from the same call site for about half a second each.

``alpha`` and then ``gamma`` have the same bytecode (only the name and file differ), so
the stacks sampled while each runs are the same (code address, offset) pairs: only the
code objects' own bytes tell them apart. Prints {"reused": true} on stderr once gamma sits
where alpha did (false if no try found that address), then runs gamma and exits.
Runs on CPython 2.7 and 3.6+.
"""

# This file must stay valid Python 2.7.

import json
import sys
import threading
import types

STOP = [False]
SOURCE = "def {0}():\n    x = 0\n    while not STOP[0]:\n        x += 1\n"


def function(name, i):
    module = compile(SOURCE.format(name), name + "_" + str(i) + ".py", "exec")
    code = [c for c in module.co_consts if hasattr(c, "co_code")][0]
    return code


def stop():
    STOP[0] = True


def run(code):
    f = types.FunctionType(code, globals())
    del code
    STOP[0] = False
    threading.Timer(0.5, stop).start()
    f()


def make(step, address):
    """alpha; or gamma, compiled again until it lands at ``address`` (None if never)."""
    if step == "alpha":
        return function("alpha", 0)
    for i in range(200000):
        code = function("gamma", i)
        if id(code) == address:
            return code
        del code
    return None


def main():
    address = None
    for step in ("alpha", "gamma"):
        code = make(step, address)
        if step == "gamma":
            sys.stderr.write(json.dumps({"reused": code is not None}) + "\n")
            sys.stderr.flush()
            if code is None:
                return
        address = id(code)
        held = [code]
        del code  # run's frame holds the only reference: alpha is freed when run returns
        run(held.pop())  # the one call site of both


main()
