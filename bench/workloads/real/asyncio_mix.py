"""An asyncio program: PRODUCERS tasks feed a queue, WORKERS tasks parse, transform and
hand on each item through a second queue to a collector; some CPU per item, timers and
many tasks alive at once. A unit is one item collected.

Usage: python asyncio_mix.py [--producers 50] [--workers 100] [--max-seconds S]
"""

import asyncio
import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


async def producer(p, q):
    n = 0
    while True:
        item = json.dumps({"p": p, "n": n, "payload": [n * k for k in range(30)]})
        await q.put(item)
        n += 1
        if n % 20 == 0:
            await asyncio.sleep(0.001)


async def worker(q_in, q_out):
    while True:
        item = json.loads(await q_in.get())
        total = sum(v * v for v in item["payload"])
        digest = hashlib.md5(repr(item).encode()).hexdigest()
        await asyncio.sleep(0)
        await q_out.put((item["p"], total, digest))
        q_in.task_done()


async def collector(q):
    while True:
        await q.get()
        common.done()


async def program(producers, workers):
    q1 = asyncio.Queue(maxsize=200)
    q2 = asyncio.Queue(maxsize=200)
    tasks = [asyncio.ensure_future(producer(p, q1)) for p in range(producers)]
    tasks += [asyncio.ensure_future(worker(q1, q2)) for _ in range(workers)]
    tasks.append(asyncio.ensure_future(collector(q2)))
    await asyncio.gather(*tasks)


def main():
    producers = int(common.arg(sys.argv, "--producers", 50))
    workers = int(common.arg(sys.argv, "--workers", 100))
    loop = threading.Thread(
        target=lambda: asyncio.run(program(producers, workers)), name="event-loop"
    )
    loop.daemon = True
    loop.start()

    def step():  # the event loop runs on its thread; the main thread waits for it
        time.sleep(0.05)

    common.run(step, common.max_seconds_arg(sys.argv))


if __name__ == "__main__":
    main()
