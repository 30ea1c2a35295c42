"""Target for tests/test_pause.py: a second thread calls execve after a short while.

Usage: pause_exec.py. Prints "ready"; the new program prints "after exec" and exits 7.
Exec from a non-leader thread makes the kernel move that thread to the process id.
"""

import os
import sys
import threading
import time


def later() -> None:
    time.sleep(0.3)
    code = "import time; time.sleep(0.3); print('after exec', flush=True); raise SystemExit(7)"
    os.execv(sys.executable, [sys.executable, "-c", code])


for _ in range(3):
    threading.Thread(target=time.sleep, args=(10,), daemon=True).start()
threading.Thread(target=later).start()
print("ready", flush=True)
while True:
    time.sleep(0.001)
