"""The idle fallback: a thread whose kernel tid flamekit cannot establish is judged by its
innermost Python frame. Checked on real stacks of a live target, read the way record and
dump read them (the walker, then the code reader), on the oldest and newest interpreters:
the standard library's waits must be recognised where they really are in each version."""

from __future__ import annotations

import subprocess
import time

import pytest
from pythons import python314, recordable

from flamekit.record.code_reader import CodeReader
from flamekit.record.proc.idle import idle_by_frame
from flamekit.record.target import open_target
from flamekit.record.walk import StackWalker

TARGET = """\
import queue, threading, time
ev = threading.Event()
q = queue.Queue()
def spinner():
    while True:
        pass
threading.Thread(target=ev.wait, name="event-waiter", daemon=True).start()
t = threading.Thread(target=q.get, name="queue-waiter", daemon=True)
t.start()
threading.Thread(target=spinner, name="spinner", daemon=True).start()
time.sleep(0.3)
print("ready", flush=True)
t.join()  # the main thread: in Thread.join
"""


def _interpreters() -> list[str]:
    found = recordable()
    return [found[0].path, python314().path]


@pytest.mark.parametrize("python", _interpreters(), ids=["oldest", "3.14"])
def test_innermost_frame_tells_waiting_from_running(python: str) -> None:
    proc = subprocess.Popen([python, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        target = open_target(proc.pid)
        try:
            walker, reader = StackWalker(target), CodeReader(target)
            # After "ready" the main thread still has to get the GIL from the spinner to
            # reach its join: walk until it is there (its frame <module> until then).
            deadline = time.monotonic() + 10
            while True:
                verdict = {}
                for st in walker.walk():
                    code = reader.read_code(st.frames[0][0]) if st.frames else None
                    name = code.name if code is not None else "<no frames>"
                    verdict[name] = idle_by_frame(st.frames, reader.read_code)
                if "<module>" not in verdict or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        finally:
            target.close()
    finally:
        proc.kill()
        proc.wait()
    assert verdict.get("spinner") is False, verdict
    # Event.wait and Queue.get park in Condition.wait; the main thread in join's wait.
    waits = {k: v for k, v in verdict.items() if k != "spinner"}
    assert waits and all(waits.values()), verdict
    assert "wait" in verdict or "_wait_for_tstate_lock" in verdict, verdict
