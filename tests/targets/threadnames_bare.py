"""Target for tests/test_threadnames.py: a process that never imports threading.

Run with -I -S (2.7: -E -s -S) so nothing at startup imports it either. Prints one JSON
line, then waits until stdin closes. Kept 2.7-compatible.
"""

# ruff: noqa: UP010, UP031 -- this file also runs on CPython 2.7
from __future__ import print_function

import os
import sys

print(
    '{"pid": %d, "threading": %s}'
    % (os.getpid(), "true" if "threading" in sys.modules else "false")
)
sys.stdout.flush()
sys.stdin.read()
