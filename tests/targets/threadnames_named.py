# -*- coding: utf-8 -*-
"""Target for tests/test_threadnames.py: threads named in every way a name can be set.

Prints ONE JSON line {"pid", "names": {ident: name}, "unnamed": [ident, ...]} once every
thread is running and named, then waits until stdin closes. Kept 2.7-compatible.
"""

# ruff: noqa: UP009, UP010, UP025, UP031 -- this file also runs on CPython 2.7
from __future__ import print_function, unicode_literals

import json
import os
import sys
import threading

try:
    import _thread
except ImportError:  # 2.7
    import thread as _thread

PY2 = sys.version_info[0] == 2
get_ident = getattr(threading, "get_ident", None) or _thread.get_ident


def text(s):
    """A non-ASCII name as this Python's Thread takes it (2.7: UTF-8 bytes)."""
    return s.encode("utf-8") if PY2 else s


stop = threading.Event()
idents = {}
lock = threading.Lock()


def work():
    with lock:
        idents[threading.current_thread()] = get_ident()
    stop.wait(600)


class Worker(threading.Thread):
    """A subclass whose own attributes come first (so "_name" sits elsewhere in its keys)."""

    def __init__(self, name):
        self.alpha = 1
        self.beta = "two"
        self.gamma = [3]
        threading.Thread.__init__(self, target=work, name=name)
        self.delta = 4.0


threads = [
    threading.Thread(target=work, name="alpha"),
    threading.Thread(target=work, name=text("wörker-λ")),  # 2-byte PEP 393 kind
    threading.Thread(target=work, name=text("snake-\U0001f40d-four-byte")),  # 4-byte kind
    threading.Thread(target=work, name=text("caf\xe9-latin1")),  # 1-byte, not ASCII
    threading.Thread(target=work, name="before-rename"),
    Worker(name="subclass-worker"),
    threading.Thread(target=work, name="dict-materialized"),
    threading.Thread(target=work, name="combined-dict"),
    threading.Thread(target=work, name="long-" + "x" * 200),
    threading.Thread(target=work),  # default "Thread-N" (3.10+: "Thread-N (work)")
]
for t in threads:
    t.daemon = True
    t.start()

# Renamed after start.
threads[4].name = text("renamed-after-start-é")
# An instance dict that exists as a dict object (3.11+ otherwise keep values only).
vars(threads[6])["extra"] = 1
# Enough extra attributes that the instance no longer shares its class's keys.
for i in range(40):
    setattr(threads[7], "attr_%d" % i, i)

raw_ready = threading.Event()
raw_ident = []


def raw():
    raw_ident.append(get_ident())
    raw_ready.set()
    stop.wait(600)


_thread.start_new_thread(raw, ())  # never registered in threading._active
raw_ready.wait(30)
while True:
    with lock:
        if len(idents) == len(threads):
            break
    stop.wait(0.01)

names = {str(get_ident()): threading.current_thread().name}
for t in threads:
    names[str(idents[t])] = t.name
if PY2:
    names = {k: v.decode("utf-8") for k, v in names.items()}
print(json.dumps({"pid": os.getpid(), "names": names, "unnamed": raw_ident}))
sys.stdout.flush()
sys.stdin.read()
stop.set()
