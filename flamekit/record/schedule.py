"""A drift-free sampling schedule on the monotonic clock.

Tick k is due at ``start + k * period``, whatever happened before: a late sample does
not push the later ones back, and ticks missed entirely are counted, not replayed.
"""

from __future__ import annotations

import time


class Schedule:
    """Hands out due times; ``missed`` counts ticks skipped because the sampler was late."""

    def __init__(self, rate_hz: float, start_ns: int | None = None) -> None:
        if not rate_hz > 0:
            raise ValueError("rate must be positive")
        self.period_ns = int(round(1e9 / rate_hz))
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.k = 0
        self.missed = 0

    def due(self) -> int:
        """Monotonic ns at which the current tick is due."""
        return self.start_ns + self.k * self.period_ns

    def advance(self, now_ns: int) -> int:
        """Move to the next tick not yet in the past; returns its due time.

        When the sampler ran longer than a period, the ticks whose time has already
        passed are skipped (and counted in ``missed``) rather than fired back to back.
        """
        self.k += 1
        due = self.start_ns + self.k * self.period_ns
        if now_ns >= due + self.period_ns:
            behind = (now_ns - due) // self.period_ns
            self.k += behind
            self.missed += behind
            due = self.start_ns + self.k * self.period_ns
        return due
