"""``flamekit top -p PID`` / ``top -- CMD``: the live view, a thin face over a recording.

The recording is :func:`flamekit.record.session.record`'s, unchanged: its trace goes to
``-o`` (or to /dev/null: nothing half-written is ever left behind), and a
:class:`~flamekit.analysis.live.LiveProfile` watches it as its observer, so what the
screen shows and what ``-o`` keeps are the same samples. The face runs in the session's
progress callback, between two ticks of the sampling loop: one thread, no locks, and the
session's own signal handling (Ctrl-C, SIGTERM and SIGHUP end the recording, the target
released and never stopped; ``q`` ends it the same way through the callback's return).

The screen is :mod:`curses` from the standard library: no dependency to install, and it
works wherever CPython was built with ``_curses`` (every Linux distribution's Python),
which is where flamekit runs anyway. Without a terminal on stdout, or with ``--once``,
a plain table is printed every interval instead (once, then exit, with ``--once``).

Everything the target chose (function, file and thread names, its command line, even its
version string, read from its memory) goes through
:func:`~flamekit.analysis.escape.printable` before it reaches the terminal.
"""

from __future__ import annotations

import contextlib
import locale
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from flamekit.analysis.escape import printable
from flamekit.analysis.live import Board, LiveBy, LiveProfile, Row, Toggle, View

#: Key -> what it does to the view (a sort order or a toggle).
SORT_KEYS: dict[str, LiveBy] = {"o": "self", "t": "total", "n": "name"}
TOGGLE_KEYS: dict[str, Toggle] = {"i": "idle", "g": "gil", "p": "threads", "l": "lines"}
PAUSE_KEYS = (" ",)
QUIT_KEYS = ("q", "Q")
HELP = "o own  t total  n name  i idle  g GIL only  p per-thread  l lines  space pause  q quit"
#: Widest thread column of the per-thread view.
THREAD_WIDTH = 28
_SORT_NAMES = {"self": "own", "total": "total", "name": "name"}


# -- what both faces print ---------------------------------------------------------------


def header_lines(board: Board, paused: bool = False) -> list[str]:
    """The header above the table: the process, how sampling goes, what the view shows."""
    f = board.figures
    v = board.view
    gil = "-" if f.gil_share is None else f"{100 * f.gil_share:.1f}%"
    procs = f" · {f.processes} Python processes" if f.processes > 1 else ""
    return [
        f"flamekit top · pid {f.pid} · Python {printable(f.python)} · {f.elapsed_s:.1f} s"
        + ("  [paused]" if paused else ""),
        "command: " + printable(" ".join(f.cmdline) or "?"),
        f"threads {f.threads_now} sampled of {f.threads_all} seen{procs} · "
        f"rate {f.rate_hz:,.1f} Hz of {f.asked_hz:g} · GIL {gil}",
        f"samples {f.samples_now:,} ({f.samples_all:,} in all) · sampling errors "
        f"{f.errors_now:,} ({f.errors_all:,} in all)",
        f"sort {_SORT_NAMES[v.by]} · idle {'shown' if v.idle else 'hidden'} · "
        f"{'GIL holder only' if v.gil else 'all threads'}"
        f"{' · per thread' if v.threads else ''} · {'lines' if v.lines else 'functions'} · "
        f"% of the last {f.interval_s:.1f} s ({board.selected_now:,} samples)",
    ]


def table_lines(board: Board, limit: int | None) -> list[str]:
    """The column heads and up to ``limit`` rows (all: None)."""
    thread = board.view.threads
    head = f"{'%Own':>6} {'%Total':>6} {'Own':>6} {'Total':>6} {'OwnAll':>8} {'TotalAll':>8}  "
    if thread:
        head += f"{'Thread':<{THREAD_WIDTH}} "
    out = [head + ("Line" if board.view.lines else "Function")]
    n = board.selected_now
    for r in board.rows[:limit] if limit is not None else board.rows:
        out.append(_row(r, n, thread))
    return out


def _row(r: Row, n: int, thread: bool) -> str:
    own = 100 * r.self_now / n if n else 0.0
    total = 100 * r.total_now / n if n else 0.0
    line = (
        f"{own:5.1f}% {total:5.1f}% {r.self_now:>6,} {r.total_now:>6,} "
        f"{r.self_all:>8,} {r.total_all:>8,}  "
    )
    if thread:
        name = printable(r.thread or "")
        if len(name) > THREAD_WIDTH:
            name = name[: THREAD_WIDTH - 1] + "…"
        line += f"{name:<{THREAD_WIDTH}} "
    return line + printable(r.label)


# -- the faces ---------------------------------------------------------------------------


class Face:
    """Rolls the picture once an interval and shows it; its :meth:`on_progress` is the
    session's progress callback, and its true return ends the recording."""

    def __init__(self, model: LiveProfile, view: View, interval_s: float) -> None:
        self.model = model
        self.view = view
        self.interval = interval_s
        self._due = interval_s
        self.shown = 0  #: boards shown
        self.broken = False  #: the output went away (a closed pipe, a hung-up terminal)

    def on_progress(self, elapsed_s: float, samples: int, ticks: int, errors: int) -> bool:
        self.model.progress(elapsed_s, samples, ticks, errors)
        stop = self.poll()
        if elapsed_s >= self._due:
            # the next refresh an interval on, or from now if this one came late
            self._due = max(self._due + self.interval, elapsed_s + self.interval / 2)
            self.model.roll()
            try:
                stop = self.refresh() or stop
            except OSError:
                self.broken = True
                return True
        return stop or self.broken

    def opened(self) -> contextlib.AbstractContextManager[Face]:
        """The face ready to show (a screen set up, and put back as it was after)."""
        return contextlib.nullcontext(self)

    def poll(self) -> bool:
        """Between refreshes: keys (the screen); True to quit."""
        return False

    def refresh(self) -> bool:
        """Show the interval just closed; True to end the recording."""
        raise NotImplementedError


class Plain(Face):
    """A table printed every interval (stdout not a terminal), or once (``--once``)."""

    def __init__(
        self,
        model: LiveProfile,
        view: View,
        interval_s: float,
        limit: int | None,
        once: bool,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(model, view, interval_s)
        self.limit = limit
        self.once = once
        self.stream = stream if stream is not None else sys.stdout

    def refresh(self) -> bool:
        board = self.model.board(self.view)
        if board is None:
            return False
        text = "\n".join(header_lines(board) + table_lines(board, self.limit))
        self.stream.write(text + "\n\n")
        self.stream.flush()
        self.shown += 1
        return self.once


class Screen(Face):
    """The full-screen view (curses): redrawn every interval, on a key and on a resize."""

    def __init__(
        self, model: LiveProfile, view: View, interval_s: float, repaint: bool = False
    ) -> None:
        """``repaint``: rewrite every line at each refresh, not only what changed (a
        launched command shares the terminal and may write over the screen)."""
        super().__init__(model, view, interval_s)
        self.repaint = repaint
        self.paused = False
        self.board: Board | None = None
        self._scr = None

    def opened(self) -> contextlib.AbstractContextManager[Face]:
        return self._opened()

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Face]:
        import curses

        locale.setlocale(locale.LC_CTYPE, "")  # names in UTF-8 drawn as such (ncurses)
        self._curses = curses
        # The terminal's size from the terminal: a COLUMNS or LINES left in the
        # environment (exported by a shell, set by a test runner) would fix the screen
        # at that size, through resizes too.
        curses.use_env(False)
        self._scr = scr = curses.initscr()
        try:
            curses.noecho()
            curses.cbreak()  # keys one by one; Ctrl-C stays a signal (the session's)
            scr.keypad(True)
            scr.nodelay(True)
            with contextlib.suppress(curses.error):
                curses.curs_set(0)
            self._draw_waiting()
            yield self
        finally:
            self._close()

    def _close(self) -> None:
        curses = self._curses
        try:
            if self._scr is not None:
                self._scr.keypad(False)
            curses.nocbreak()
            curses.echo()
            curses.endwin()
        except (curses.error, OSError):
            pass  # the terminal is gone (SIGHUP): nothing left to restore

    def poll(self) -> bool:
        scr = self._scr
        curses = self._curses
        redraw = self._resized()
        try:
            while True:
                key = scr.get_wch()
                if key == curses.KEY_RESIZE:
                    curses.update_lines_cols()
                    scr.clear()
                    redraw = True
                    continue
                if not isinstance(key, str):
                    continue
                if key in QUIT_KEYS:
                    return True
                if key in SORT_KEYS:
                    self.view = self.view.sorted_by(SORT_KEYS[key])
                elif key in TOGGLE_KEYS:
                    self.view = self.view.toggled(TOGGLE_KEYS[key])
                elif key in PAUSE_KEYS:
                    self.paused = not self.paused
                else:
                    continue
                if not self.paused:
                    self.board = self.model.board(self.view) or self.board
                redraw = True
        except curses.error:
            pass  # no key waiting
        if redraw:
            try:
                self._draw()
            except curses.error:
                self.broken = True
        return False

    def _resized(self) -> bool:
        """Whether the terminal's size changed, asked of the terminal itself: the
        SIGWINCH that tells ncurses of it is lost when it comes before ncurses set its
        handler (a pane resized as the command starts: tmux drew 80 columns of 120), and
        one every tick is one ioctl."""
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
        except (OSError, ValueError):
            return False
        if (size.lines, size.columns) == self._scr.getmaxyx():
            return False
        self._curses.resizeterm(size.lines, size.columns)
        self._scr.clear()
        return True

    def refresh(self) -> bool:
        if not self.paused:
            self.board = self.model.board(self.view)
        try:
            self._draw()
        except self._curses.error:
            self.broken = True
        self.shown += 1
        return False

    def _draw_waiting(self) -> None:
        scr = self._scr
        scr.erase()
        self._put(0, "flamekit top · attaching, first figures in a moment…")
        self._put(1, HELP)
        scr.refresh()

    def _draw(self) -> None:
        scr = self._scr
        if self.board is None:
            self._draw_waiting()
            return
        height, width = scr.getmaxyx()
        scr.erase()
        if self.repaint:
            scr.redrawwin()
        top = header_lines(self.board, self.paused)
        top.append("─" * max(0, width - 1))
        room = max(0, height - len(top) - 2)  # the column heads and the key line
        lines = top + table_lines(self.board, room)
        for y, text in enumerate(lines[: height - 1]):
            self._put(y, text, self._curses.A_REVERSE if y == len(top) else 0)
        self._put(height - 1, HELP, self._curses.A_DIM)
        scr.refresh()

    def _put(self, y: int, text: str, attr: int = 0) -> None:
        """One line, cut to the width (the last column stays free: writing it moves the
        cursor past the window's end, an error in curses)."""
        height, width = self._scr.getmaxyx()
        if y >= height or width < 2:
            return
        with contextlib.suppress(self._curses.error):
            self._scr.addnstr(y, 0, text, width - 1, attr)


def face_for(
    model: LiveProfile,
    view: View,
    interval_s: float,
    limit: int | None,
    once: bool,
    launched: bool,
) -> Face:
    """The screen on a terminal; the plain table otherwise or with ``--once``."""
    if once or not _terminal():
        return Plain(model, view, interval_s, limit, once)
    return Screen(model, view, interval_s, repaint=launched)


def _terminal() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty() and os.environ.get("TERM") != "dumb"
