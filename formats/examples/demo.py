"""A small program to profile: a worker pool handling "requests" for about three seconds.

Used by the README's first command and end-to-end tests; the example traces here are synthetic.
Most time goes to parse_record (CPU), some to render_page, and a logger thread mostly
sleeps, so a flame graph of it has a clear shape and an idle thread to filter out.
"""

import json
import sys
import threading
import time


def parse_record(text):
    fields = {}
    for part in text.split(";"):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def render_page(fields):
    return json.dumps(fields, sort_keys=True)


def handle_request(n):
    text = ";".join(f"key{i} = value{i * n}" for i in range(40))
    for _ in range(6):
        fields = parse_record(text)
    return render_page(fields)


def worker(stop):
    n = 0
    while not stop.is_set():
        handle_request(n)
        n += 1


def logger(stop):
    while not stop.wait(0.2):
        pass


def main(seconds):
    stop = threading.Event()
    threads = [
        threading.Thread(target=worker, args=(stop,), name="worker-1"),
        threading.Thread(target=logger, args=(stop,), name="logger"),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        handle_request(0)
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
