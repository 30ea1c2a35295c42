"""``flamekit info FILE``: what a trace holds, for people (text) or machines (--json).

A face over :attr:`flamekit.api.Recording.summary`. Every fact in the text comes from
the file (the target's command line, host and thread names, the recorder's error), so
every line goes through the one escaper: a name cannot split a line or act on the
terminal. The JSON keeps them exact, escaped by JSON's own rules.
"""

from __future__ import annotations

import json
import time

import click

from flamekit import api
from flamekit.analysis.chunks import chunked
from flamekit.analysis.escape import printable
from flamekit.analysis.summary import ProcessSummary, Summary, describe_mode
from flamekit.commands._common import warn_if_truncated


def render_text(s: Summary) -> str:
    """The human summary, aligned label: value lines and a thread table."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s["start_wall_ns"] / 1e9))
    if s["complete"]:
        status = f"complete (ended: {s['end_reason']}"
        status += f": {s['end_error']})" if s["end_error"] else ")"
    else:
        status = f"TRUNCATED: {s['truncation']}"
    mode = describe_mode(s["mode"])
    errors = "unknown (truncated)" if s["sampling_errors"] is None else f"{s['sampling_errors']:,}"
    rows = [
        ("file", f"{s['path']} ({s['size_bytes']:,} bytes, FKT {s['format_version']})"),
        ("status", status),
        ("target", f"pid {s['pid']}: {' '.join(s['cmdline']) or '?'}"),
        ("python", s["python_version"] or "?"),
        (
            "recorded",
            f"{started} on {s['hostname'] or '?'} (Linux {s['kernel'] or '?'}), "
            f"flamekit {s['flamekit_version']}",
        ),
        ("mode", f"{mode}; {s['rate_hz']:g} Hz requested"),
        ("duration", f"{s['duration_s']:.3f} s"),
        (
            "samples",
            f"{s['samples']:,} ({s['effective_rate_hz']:g} Hz effective; "
            f"{s['idle_samples']:,} idle, {s['gil_samples']:,} holding the GIL)",
        ),
        ("sampling errors", errors),
        (
            "pauses cut",
            "unknown (truncated)"
            if s["cut_pauses"] is None
            else f"{s['cut_pauses']:,} (at the --max-pause bound: the target ran on while "
            "they were read)"
            if s["cut_pauses"]
            else "0",
        ),
        ("code objects", f"{s['code_objects']:,} in {s['stacks']:,} distinct stacks"),
        ("bytes/sample", "-" if s["bytes_per_sample"] is None else f"{s['bytes_per_sample']:.2f}"),
    ]
    width = max(len(k) for k, _ in rows) + 1
    lines = [f"{k + ':':<{width}} {v}" for k, v in rows]
    if s["processes"]:
        lines.append(f"processes ({len(s['processes'])}):")
        lines.append(f"  {'PID':>8}  {'PARENT':>8}  {'PYTHON':<8}  {'SAMPLES':>9}  LIFE")
        lines.extend(f"  {process_row(p)}" for p in s["processes"])
    lines.append(f"threads ({len(s['threads'])}):")
    lines.append(f"  {'TID':>8}  {'SAMPLES':>9}  NAME")
    for t in s["threads"]:
        tid = "?" if t["tid"] is None else str(t["tid"])
        if t["ns_tid"] is not None:
            tid += f" (ns {t['ns_tid']})"
        lines.append(f"  {tid:>8}  {t['samples']:>9,}  {t['name'] or '?'}")
    # The labels and layout hold no control characters: escaping whole lines escapes
    # exactly the facts from the file, and none can be forgotten.
    return "\n".join(map(printable, lines))


def process_row(p: ProcessSummary) -> str:
    """One process of the table: ids, version, samples, when it ran and how it ended, and
    its command line last (the one column of any width)."""
    start = "?" if p["start_s"] is None else f"{p['start_s']:.3f}"
    if p["how"] is None:
        life = f"{start} s-"
    else:
        end = f"{p['end_s']:.3f} s {p['how']}"
        if p["status"] is not None:
            end += f" ({'signal ' if p['how'] == 'killed' else 'status '}{p['status']})"
        life = f"{start}-{end}"
    version = p["python_version"] or "-"
    return f"{p['pid']:>8}  {p['ppid']:>8}  {version:<8}  {p['samples']:>9,}  {life}: " + (
        " ".join(p["cmdline"]) or "?"
    )


@click.command("info")
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(file: str, as_json: bool) -> None:
    """Summarise an FKT trace: header facts, duration, samples, threads, truncation."""
    rec = api.open(file)
    warn_if_truncated(file, rec)
    s = rec.summary
    if as_json:  # streamed: a trace of a million threads is a 200 MB document
        out = click.get_binary_stream("stdout")
        for chunk in chunked(json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(s)):
            out.write(chunk)
        out.write(b"\n")
        out.flush()
    else:
        click.echo(render_text(s))
