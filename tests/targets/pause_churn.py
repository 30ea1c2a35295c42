"""Target for tests/test_pause.py: starts and ends hundreds of short threads a second.

Usage: pause_churn.py SECONDS. Prints "ready", starts on a line from stdin. Each thread adds its index to a shared list; at the end
the program prints "threads N sum S" with S computed independently, so a lost or
corrupted thread shows up as a mismatch.
"""

import sys
import threading
import time

seconds = float(sys.argv[1])
results: list[int] = []
lock = threading.Lock()


def work(i: int) -> None:
    x = sum(range(i % 50))
    with lock:
        results.append(i + x - sum(range(i % 50)))


print("ready", flush=True)
sys.stdin.readline()
n = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    batch = [threading.Thread(target=work, args=(n + k,)) for k in range(8)]
    for t in batch:
        t.start()
    for t in batch:
        t.join()
    n += len(batch)
ok = len(results) == n and sum(results) == n * (n - 1) // 2
print("threads", n, "ok" if ok else "MISMATCH", flush=True)
sys.exit(0 if ok else 1)
