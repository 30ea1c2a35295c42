"""The one-line recording status on stderr, refreshed a few times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from flamekit.analysis.escape import printable


class Progress:
    """Rewrites one status line in place; silent when ``quiet`` or not on a terminal-ish
    stream. Never writes to stdout, which may be a pipe the user reads."""

    def __init__(
        self, quiet: bool = False, stream: TextIO | None = None, interval_s: float = 0.25
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.interval = interval_s
        self._last = 0.0
        self._width = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(
        self, elapsed_s: float, samples: int, ticks: int, errors: int, force: bool = False
    ) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not force and (now - self._last < self.interval or elapsed_s < 0.5):
            return
        self._last = now
        rate = ticks / elapsed_s if elapsed_s > 0 else 0.0
        line = (
            f"flamekit: recording {elapsed_s:6.1f} s, {samples:,} samples, "
            f"{rate:,.1f} Hz effective, {errors:,} sampling errors"
        )
        if self._tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            # not a terminal (a log, CI): one line per refresh, at most once a second
            if now - getattr(self, "_last_plain", 0.0) < 1.0 and not force:
                return
            self._last_plain = now
            self.stream.write(printable(line) + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line of its own (a warning), printed even when quiet: on a terminal it
        takes the progress line's place, which the next update writes again below. It
        names processes by their command lines, the target's to choose: escaped."""
        if self._tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(printable(line) + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if not self.quiet and self._tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
