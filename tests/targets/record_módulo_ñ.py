"""Part of tests/targets/record_known.py: non-ASCII function names in a non-ASCII file.

``fé_latin`` is a 1-byte (latin-1) PEP 393 name, ``函数_cjk`` a 2-byte one. The sleeper
thread parks in ``函数_cjk`` on the MARK:cjk-sleep line for the target's whole life.
"""

import time


def fé_latin(lifetime, started):
    return 函数_cjk(lifetime, started)  # MARK:latin-call


def 函数_cjk(lifetime, started):
    started.set()
    time.sleep(lifetime)  # MARK:cjk-sleep


ENTRY = fé_latin  # what record_known.py calls (2.7 cannot spell the name)
