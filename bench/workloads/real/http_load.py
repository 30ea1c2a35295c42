"""A threaded HTTP server on loopback (http.server.ThreadingHTTPServer) with a CPU-ish
handler, under a bounded load generator in the same process: CLIENTS threads with
urllib, each at most RATE (250) requests a second. A unit is one request answered.

Usage: python http_load.py [--clients 4] [--rate 150] [--max-seconds S]
"""

import hashlib
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def page(n):
    """The handler's CPU: a small sieve, a JSON document, a few hashes."""
    limit = 1500 + 10 * (n % 50)
    sieve = bytearray([1]) * limit
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    primes = [i for i in range(2, limit) if sieve[i]]
    doc = json.dumps(
        {"n": n, "primes": primes[-50:], "rows": [{"i": i, "sq": i * i} for i in range(100)]}
    )
    digest = doc.encode()
    for _ in range(20):
        digest = hashlib.sha256(digest).digest()
    return doc.encode() + digest.hex().encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = page(int(self.path.strip("/") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    clients = int(common.arg(sys.argv, "--clients", 4))
    rate = float(common.arg(sys.argv, "--rate", 250))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, name="http-server")
    t.daemon = True
    t.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def client(c):
        period = 1.0 / rate
        n = c
        nxt = time.perf_counter()
        while True:
            with urllib.request.urlopen(url + str(n), timeout=30) as r:
                r.read()
            common.done()
            n += clients
            nxt = max(nxt + period, time.perf_counter() - 1.0)
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    for c in range(clients):
        w = threading.Thread(target=client, args=(c,), name=f"client-{c}")
        w.daemon = True
        w.start()

    def step():  # the main thread only watches; the clients count
        time.sleep(0.05)

    common.run(step, common.max_seconds_arg(sys.argv))


if __name__ == "__main__":
    main()
