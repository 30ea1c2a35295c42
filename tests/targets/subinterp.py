"""Sub-interpreter target: the main thread runs code in a sub-interpreter for 1.0 s
(sub_spin), then in its own for 0.5 s (main_spin), and exits. Both run on the one OS
thread: while the sub-interpreter runs, the main interpreter's thread state waits inside
the call that runs it, with the same kernel tid. By CPU: sub_spin 2/3, main_spin 1/3.
"""

import time

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.8-3.12

SUB = """
import time

def sub_spin(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1

sub_spin(1.0)
"""


def main_spin(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


sub = interpreters.create()
run = getattr(interpreters, "exec", None) or interpreters.run_string
run(sub, SUB)
main_spin(0.5)
interpreters.destroy(sub)
