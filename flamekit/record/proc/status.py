"""/proc/PID/status as fields: the one file that says who a process is (its uids,
capabilities, namespaces' ids, tracer, state), readable for any process, whoever owns it."""

from __future__ import annotations


def parse_status(text: str) -> dict[str, str]:
    """``Key:\\tvalue`` lines -> {key: value stripped}; lines without a colon are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def read_status(path: str) -> dict[str, str]:
    """The fields of a status file (``/proc/PID/status``, ``/proc/PID/task/TID/status``,
    ``/proc/self/status``); empty if it cannot be read (the process is gone)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_status(f.read())
    except OSError:
        return {}


def ints(value: str | None) -> tuple[int, ...]:
    """A field of numbers (``Uid``, ``NSpid``) as ints; empty if absent or garbled."""
    try:
        return tuple(int(word) for word in (value or "").split())
    except ValueError:
        return ()
