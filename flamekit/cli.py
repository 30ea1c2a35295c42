"""The ``flamekit`` command line: parses options, calls one stage, picks the exit code.

This module is the entry point and imports almost nothing at its top: a Ctrl-C (or
SIGTERM, SIGHUP) is one line and exit 130 from its first line on (see
:mod:`flamekit.stop_signals`), and loading click and the commands comes after that.
"""

from __future__ import annotations

import sys

from flamekit.stop_signals import interrupt_from_now

#: Made before it is needed: when memory runs out, the frames that held it are gone by
#: the time this is printed, but nothing here should have to allocate much.
OUT_OF_MEMORY = (
    "flamekit: error: out of memory (the trace, or what it was asked to make, is larger "
    "than the memory this process may use; --thread, --from, --until or --max-output "
    "ask for less)\n"
)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every flamekit error becomes one line on stderr and its exit code.

    Running out of memory is one line and exit 1 too, never a traceback: a hostile or
    huge trace may get there on a machine with less memory than the stated bounds need
    (formats/fkt.md)."""
    try:
        interrupt_from_now()  # inside the try: a signal between two of its handlers too
        _run(argv)
    except KeyboardInterrupt:  # before click was there to catch it
        print("flamekit: interrupted", file=sys.stderr)
        sys.exit(130)
    except MemoryError:
        sys.stderr.write(OUT_OF_MEMORY)
        sys.stderr.flush()
        sys.exit(1)


def _run(argv: list[str] | None) -> None:
    import click

    from flamekit.commands.group import cli, usage_line
    from flamekit.errors import FlamekitError

    try:
        rv = cli.main(args=argv, prog_name="flamekit", standalone_mode=False)
    except FlamekitError as exc:
        click.echo(f"flamekit: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("flamekit: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"flamekit: error: {usage_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("flamekit: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our stdout went away (``flamekit dump | head``): not an error of ours.
        sys.stderr.close()
        sys.exit(0)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
