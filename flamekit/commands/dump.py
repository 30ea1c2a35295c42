"""``flamekit dump -p PID``: print every thread's current Python stack once."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import click

from flamekit.analysis.escape import printable
from flamekit.analysis.snapshot import DumpThread
from flamekit.commands._common import debug_dir_option, full_filenames_option
from flamekit.commands.record import native_option, parse_pid
from flamekit.errors import UsageError


def render_text(
    pid: int, cmd: str, version: str, threads: list[DumpThread], with_locals: bool = False
) -> str:
    """The people's form. Every name comes from the live target, which chooses them: all
    go through the one escaper, so none reaches the terminal as a control sequence (an
    ``ESC]0;`` title or a clear-screen in a function name did). So does every variable's
    name and repr (a str's repr escapes its own controls, a type's name does not)."""
    lines = [f"Process {pid}: {printable(cmd)}", f"Python {printable(version)}", ""]
    for t in threads:
        state = "idle" if t.idle else "active"
        if t.holds_gil:
            state += "+gil"
        tid = t.native_tid if t.native_tid is not None else "?"
        name = f' "{printable(t.name)}"' if t.name else ""
        lines.append(f"Thread {tid} (python id {t.thread_id:#x}, {state}):{name}")
        for f in t.frames:
            if f.native:
                lib = os.path.basename(f.file) or f.file
                at = ""
                if f.source is not None and f.line is not None:
                    at = f" ({printable(os.path.basename(f.source))}:{f.line})"
                lines.append(f"    {printable(f.function)}{at} [{printable(lib)}]")
                continue
            where = f"{f.file}:{f.line}" if f.line is not None else f.file
            lines.append(f"    {printable(f.function)} ({printable(where)})")
            if not with_locals:
                continue
            if f.locals is None:
                lines.append("        (locals unreadable)")
            for v in f.locals or ():
                mark = "arg " if v.arg else ""
                lines.append(f"        {mark}{printable(v.name)} = {printable(v.repr)}")
        if not t.frames:
            lines.append("    (no Python frames)")
        if t.error:
            lines.append(f"    (stack incomplete: {printable(t.error)})")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


@click.command("dump")
@click.option("-p", "--pid", metavar="PID", callback=parse_pid, help="The process to look at.")
@click.option("--json", "as_json", is_flag=True, help="Print the stacks as JSON.")
@click.option("--nonblocking", is_flag=True, help="Read without pausing the target.")
@click.option("--subprocesses", is_flag=True, help="Also every Python process descended from it.")
@click.option(
    "--locals", "with_locals", is_flag=True, help="Also each frame's arguments and local variables."
)
@full_filenames_option
@native_option("Also print")
@debug_dir_option
def command(
    pid: int | None,
    as_json: bool,
    nonblocking: bool,
    subprocesses: bool,
    with_locals: bool,
    full_filenames: bool,
    native: bool,
    debug_dir: tuple[str, ...],
    native_lines: bool,
) -> None:
    """Print every thread's current Python stack once, innermost frame first."""
    if pid is None:
        raise UsageError("give the process to look at with -p PID")
    from flamekit.analysis.snapshot import NativeContext, symbolize
    from flamekit.analysis.value_repr import Bounds
    from flamekit.record.objects import Limits
    from flamekit.record.proc import launcher
    from flamekit.record.session import check_native
    from flamekit.record.snapshot import snapshot, snapshot_tree
    from flamekit.record.target import open_target
    from flamekit.symbolize.native import NativeSymbolizer, ObjectFinder

    if native:
        check_native(not nonblocking)
    launcher.check_exists(pid)
    bounds = Bounds() if with_locals else None
    # The reader reads no more than the reprs show: the same bounds.
    limits = Limits(bounds.depth, bounds.items, bounds.chars) if bounds is not None else None
    if subprocesses:
        snaps = snapshot_tree(pid, pausing=not nonblocking, locals_limits=limits, native=native)
    else:
        target = open_target(pid)
        try:
            snaps = [snapshot(target, pausing=not nonblocking, locals_limits=limits, native=native)]
        finally:
            target.close()
    docs = []
    for snap in snaps:
        cmdline = list(launcher.cmdline(snap.pid))
        context = None
        if native:
            finder = ObjectFinder(debug_dir)
            context = NativeContext(
                snap.pid,
                snap.python_version,
                NativeSymbolizer({snap.pid: snap.native_objects}, finder, lines=native_lines),
            )
        threads = symbolize(
            snap.threads,
            snap.codes,
            bounds,
            cmdline=cmdline,
            full_filenames=full_filenames,
            native=context,
        )
        docs.append(
            {
                "pid": snap.pid,
                "cmdline": cmdline,
                "python_version": snap.python_version,
                "threads": threads,
            }
        )
    if as_json:
        for doc in docs:
            doc["threads"] = [_thread_json(t, with_locals) for t in doc["threads"]]
        out = {"processes": docs} if subprocesses else docs[0]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        click.echo(
            "\n\n".join(
                render_text(
                    d["pid"],
                    " ".join(d["cmdline"]),
                    d["python_version"],
                    d["threads"],
                    with_locals,
                )
                for d in docs
            )
        )


def _thread_json(thread: DumpThread, with_locals: bool) -> dict[str, object]:
    """A thread as JSON; its frames' ``locals`` only when asked for (else as before)."""
    doc = asdict(thread)
    for frame in doc["frames"]:
        if not with_locals:
            del frame["locals"]
        if not frame["native"]:
            del frame["native"]  # only dump --native's C frames say so (JSON as before)
        if frame["source"] is None:
            del frame["source"]  # only --native-lines gives a C frame its source file
    return doc
