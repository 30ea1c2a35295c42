"""The signals that end a recording, and when they may act.

SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal went away) end a recording the same
way, whenever they come. What that means depends on how far it got:

* **Before the trace file exists** nothing is worth keeping: the signal interrupts the
  session where it is (:class:`Interrupted`, a KeyboardInterrupt, so every ``finally``
  on the way out runs: a launched command is stopped, a target is closed) and the
  command exits 130 with one line. The command line raises it from its first line on
  (:func:`interrupt_from_now`); only the interpreter's own start-up, before any of
  flamekit runs, is left to the signals' default actions.
* **Once the trace file exists** the signal must not land between two bytes of a record
  or while the target is held: the signals are blocked (:meth:`StopSignals.hold`) and
  the sampling loop polls for them between ticks (:meth:`StopSignals.poll`), so the
  recording ends with a complete trace, the target released.
* **While the trace is being finished** a second Ctrl-C is one signal too many: the
  signals stay blocked until the end record is written, and what came meanwhile is
  dropped (:meth:`StopSignals.release`). Restoring the mask before that handed such a
  signal to Python between the loop and the end record: the trace was left without its
  end (``test_ctrl_c_at_the_terminal`` failed about 1 run in 5 when the child exited on
  the same Ctrl-C just before the recorder saw it).

A signal the process ignores (SIGINT and SIGHUP under ``nohup``, SIGINT in a
non-interactive shell's background job) stays ignored: it is not watched at all.

Ctrl-Z (SIGTSTP) is held and polled too while the target is traced: the recorder lets
go of the target before it stops (see ``Recorder._suspended``).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: What ends a recording from outside, in the order they are named.
ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived before there was anything to finish.

    A subclass, not KeyboardInterrupt itself: CPython marks a KeyboardInterrupt that
    leaves code run by ``exec`` of a string (dataclasses and namedtuples make their
    methods that way, at import) as unhandled even once it is caught, and at exit kills
    itself with SIGINT: ``flamekit record`` printed its one line, then died of the signal
    (exit -2) in runs interrupted while it imported the recorder. The check is for the
    exact type.
    """

    def __init__(self, signo: int) -> None:
        super().__init__(signal.Signals(signo).name)
        self.signo = signo


#: Stop signals whose handler ran (oldest first): an exception raised in a ``__del__``
#: or a weakref callback is printed and dropped by Python, so the raise alone can be lost.
_fired: list[int] = []


def _raise(signo: int, frame: FrameType | None) -> None:
    _fired.append(signo)
    raise Interrupted(signo)


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Python prints an exception a ``__del__`` or weakref callback raised, and drops it:
    for our :class:`Interrupted` that was a traceback before the one line (a SIGHUP
    during an import, in the import lock's weakref callback). It is in ``_fired``, acted
    on when the session holds the signals; anything else is printed as before."""
    if isinstance(unraisable.exc_value, Interrupted):
        return
    _previous_unraisable(unraisable)


_previous_unraisable = sys.unraisablehook


def _quiet_unraisable() -> None:
    global _previous_unraisable
    if sys.unraisablehook is not _unraisable:
        _previous_unraisable, sys.unraisablehook = sys.unraisablehook, _unraisable


def interrupt_from_now() -> None:
    """For the command line, as early as it can: a stop signal raises :class:`Interrupted`
    (SIGTERM and SIGHUP too, whose default action would leave no word and, for a recording,
    a launched command running). Signals the process ignores stay ignored."""
    _quiet_unraisable()
    for s in ENDING:
        if signal.getsignal(s) != signal.SIG_IGN:
            signal.signal(s, _raise)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP for one session (those not ignored): see the module doc.

    Use from the main thread: Python runs signal handlers there, and the mask set here is
    the main thread's (the recorder starts no other thread).
    """

    def __init__(self, suspend: bool = False) -> None:
        """``suspend``: watch Ctrl-Z (SIGTSTP) too, for a caller that must let go of
        the target before it stops (a tracer, in pausing mode)."""
        live = [s for s in ENDING if signal.getsignal(s) != signal.SIG_IGN]
        self.ending = frozenset(live)
        if suspend and signal.getsignal(signal.SIGTSTP) != signal.SIG_IGN:
            live.append(signal.SIGTSTP)
        self.watched = frozenset(live)
        self._old_handlers: dict[int, object] = {}
        self._old_mask: set[int] | None = None

    def interrupt_now(self) -> None:
        """From now on, until :meth:`hold`, a watched signal raises :class:`Interrupted`
        wherever the session is (SIGTERM and SIGHUP too, which by default would kill the
        recorder without stopping what it launched)."""
        _quiet_unraisable()
        for s in self.ending:
            if s not in self._old_handlers:
                self._old_handlers[s] = signal.signal(s, _raise)

    def hold(self) -> None:
        """Block the watched signals: from now on they wait for :meth:`poll`.

        Raises :class:`Interrupted` if one came before and its exception was lost (see
        ``_fired``): what was interrupted cannot have noticed."""
        if self._old_mask is None:
            self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.watched)
        if _fired:
            signo = _fired[0]
            _fired.clear()
            raise Interrupted(signo)

    @contextmanager
    def held(self) -> Iterator[frozenset[int]]:
        """Block the watched signals for a step that must not be cut in two (starting a
        command: its process made but its Popen not yet ours); a signal that comes
        meanwhile acts when the block ends. Yields the mask to give a child process."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, self.watched)
        try:
            yield frozenset(old)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def poll(self, timeout: float = 0.0) -> signal.struct_siginfo | None:
        """The first watched signal pending, waiting up to ``timeout`` seconds for one."""
        if not self.watched:
            if timeout > 0:
                time.sleep(timeout)
            return None
        info = signal.sigtimedwait(self.watched, timeout)
        # A wait cut by SIGSTOP then SIGCONT whose time ran out meanwhile returns a
        # siginfo of whatever was in its buffer instead of None (CPython 3.11-3.14, 1-2
        # stops in 4): a recording stopped and continued ended as if interrupted.
        if info is None or info.si_signo not in self.watched:
            return None
        return info

    def release(self, unblock: bool = True) -> list[int]:
        """Drop the watched signals still pending, restore the handlers as they were and
        unblock the signals. Returns the signals dropped (a second Ctrl-C while the trace
        was finished).

        ``unblock=False`` leaves them blocked, for a command about to exit: a Ctrl-C
        typed twice otherwise lands after this, while the interpreter shuts down with the
        default actions back in place, and kills it (exit -2, the trace complete)."""
        dropped: list[int] = []
        _fired.clear()  # what fired during the session was the session's to act on
        if self._old_mask is not None:
            while self.watched:
                info = signal.sigtimedwait(self.watched, 0)
                if info is None or info.si_signo not in self.watched:
                    break
                dropped.append(info.si_signo)
        for s, handler in self._old_handlers.items():
            signal.signal(s, handler)
        self._old_handlers.clear()
        if self._old_mask is not None and unblock:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
            self._old_mask = None
        return dropped

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
