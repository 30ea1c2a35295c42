"""The ``flamekit`` command group: its commands, imported only when run, so ``flamekit
info`` never pays for loading the recorder's ELF and ptrace machinery."""

from __future__ import annotations

import importlib

import click

from flamekit import __version__

# name -> one-line help. The module flamekit.commands.<name> defines ``command``.
COMMANDS: dict[str, str] = {
    "record": "Sample a running (or launched) Python process into an FKT trace.",
    "dump": "Print every thread's current Python stack once.",
    "info": "Summarise an FKT trace: header, duration, samples, threads.",
    "convert": "Symbolize a trace and write collapsed, speedscope, cpuprofile, svg or pprof.",
    "diff": "Compare two traces: what got slower, what got faster.",
    "top": "Show the functions with the most samples in a trace.",
    "completions": "Print a shell completion script (bash, zsh or fish).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"flamekit.commands.{name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flamekit")
def cli() -> None:
    """flamekit: sample CPython from outside, analyse the recording anywhere, later."""


def usage_line(exc: click.UsageError) -> str:
    """click's own usage errors (a bad type, a missing option, an unknown one) as one line
    that names the option and where to read more, like every other flamekit error."""
    text = " ".join(exc.format_message().split())
    path = exc.ctx.command_path if exc.ctx is not None else "flamekit"
    return f"{text} (see '{path} --help')"
