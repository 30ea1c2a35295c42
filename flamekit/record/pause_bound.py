"""A bound on how long one sample may hold a paused target.

A walk's time grows with the stack: a 50,000-deep recursion on 3.9 held its target up to
165 ms a sample, and ran 23 times slower under a pausing recording. Each pause therefore
arms a one-shot timer (``setitimer``, SIGALRM); if it fires before the sample is taken,
its handler lets the target go and the walk reads the rest as a non-blocking walk would,
its torn reads counted as sampling errors like any other. Python runs the handler in the
main thread between two steps of the walk, the thread that may resume a ptrace'd target.

The timer costs two system calls a tick (about 2-4 us here, against a few hundred for the
tick), paid for a guarantee: a stack that turns deep between two ticks is bounded from its
first sample.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from flamekit.record.proc.pause import Pauser

#: The default bound, in seconds: a few times the pause of an everyday stack.
DEFAULT_S = 0.005


class PauseBound:
    """Resumes the target of :meth:`arm`'s pauser once ``seconds`` have passed; call
    :meth:`disarm` when the sample is taken. One per recording, whatever the number of
    processes it pauses one after the other."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.hits = 0  #: samples whose pause was cut at the bound
        self._pauser: Pauser | None = None
        self._on_fire: Callable[[], None] | None = None
        self._fired = False
        self._old: Any = None

    def __enter__(self) -> PauseBound:
        self._old = signal.signal(signal.SIGALRM, self._fire)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)

    def arm(self, pauser: Pauser, on_fire: Callable[[], None]) -> None:
        """Let ``pauser``'s target go after the bound; ``on_fire`` runs once it is (the
        walker stops trusting the rest of its read to be consistent)."""
        self._pauser = pauser
        self._on_fire = on_fire
        self._fired = False
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def disarm(self) -> bool:
        """Stop the timer; True if it fired (the target was let go before the end)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._pauser = None
        if self._fired:
            self.hits += 1
        return self._fired

    def _fire(self, signo: int, frame: FrameType | None) -> None:
        pauser = self._pauser
        if pauser is not None and pauser.paused and not self._fired:
            self._fired = True
            pauser.resume()
            if self._on_fire is not None:
                self._on_fire()
