"""Target: rewrites a field of its own running code object with ctypes, in a loop.

Usage: corrupt_codes.py SECONDS. Prints "ready PID", then runs ``spin`` for SECONDS.
``spin`` takes turns at breaking its own code object and mending it, a few thousand
loop steps each way: co_filename pointing at an int (not a str), co_name pointing at
unmapped memory, ob_type naming another type. A recorder reading the code while it is
broken cannot read it as a code object; read while mended, it is the code it was.
CPython itself never looks at these fields while ``spin`` runs, so the target runs on.
Runs on CPython 3.6+.
"""

import ctypes
import os
import sys
import time

NOT_A_STR = 12345678901234567890  # a live int object


def field_offset(obj, value_address):
    """Offset of the first word of ``obj`` that holds ``value_address``."""
    words = (ctypes.c_uint64 * (sys.getsizeof(obj) // 8)).from_address(id(obj))
    return [i * 8 for i, w in enumerate(words) if w == value_address][0]


def spin(seconds):
    code = spin.__code__
    breaks = [
        (field_offset(code, id(code.co_filename)), id(NOT_A_STR)),
        (field_offset(code, id(code.co_name)), 0x10),
        (field_offset(code, id(type(code))), id(int)),
    ]
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for offset, bad in breaks:
            slot = ctypes.c_uint64.from_address(id(code) + offset)
            good = slot.value
            slot.value = bad
            for i in range(3000):
                n += i
            slot.value = good
            for i in range(3000):
                n += i
    return n


print("ready", os.getpid(), flush=True)
spin(float(sys.argv[1]))
