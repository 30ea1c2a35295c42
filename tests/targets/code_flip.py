"""Target: one code object whose co_filename pointer the test sets, line by line.

Prints one JSON line (the addresses of two code objects, ``a`` and ``b``, and a's file
name), then reads commands on stdin, answering "ok" to each: ``good`` (a's own file
name), ``other`` (another str, OTHER), ``bogus`` (an int: no longer a readable code).
Between commands it waits, so every read of it sees the state last set. Restores the
pointer at the end of input. Runs on CPython 3.6+.
"""

import ctypes
import json
import sys

OTHER = "".join(["other_", "file.py"])  # a str object of its own
NOT_A_STR = 12345678901234567890


def a():
    return 1


def b():
    return 2


code = a.__code__
words = (ctypes.c_uint64 * (sys.getsizeof(code) // 8)).from_address(id(code))
offset = [i * 8 for i, w in enumerate(words) if w == id(code.co_filename)][0]
slot = ctypes.c_uint64.from_address(id(code) + offset)
states = {"good": slot.value, "other": id(OTHER), "bogus": id(NOT_A_STR)}
print(json.dumps({"a": id(a.__code__), "b": id(b.__code__), "file": code.co_filename}))
sys.stdout.flush()
for line in sys.stdin:
    slot.value = states[line.strip()]
    print("ok")
    sys.stdout.flush()
slot.value = states["good"]
