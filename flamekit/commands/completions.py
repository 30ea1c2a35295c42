"""``flamekit completions bash|zsh|fish``: the shell completion script, as py-spy has it.

click generates the scripts and answers them: each script calls ``flamekit`` back with
``_FLAMEKIT_COMPLETE=<shell>_complete`` and the words typed so far, and the group's own
``main`` answers with the commands, options and paths that fit (see
:mod:`click.shell_completion`). So completion always knows this version's commands and
options, and nothing here spells them a second time.

Install with, for instance::

    flamekit completions bash > ~/.local/share/bash-completion/completions/flamekit
    flamekit completions zsh > "${fpath[1]}/_flamekit"
    flamekit completions fish > ~/.config/fish/completions/flamekit.fish
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

#: The shells click has a script for (its built-in classes).
SHELLS = ("bash", "zsh", "fish")
#: The program name the scripts complete and call back: the entry point in pyproject.toml.
PROG_NAME = "flamekit"
#: The variable the scripts set to ask for completions (click's ``_{PROG}_COMPLETE``).
COMPLETE_VAR = "_FLAMEKIT_COMPLETE"


@click.command("completions")
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
@click.pass_context
def command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish)."""
    cls = get_completion_class(shell)
    assert cls is not None  # every name of SHELLS is one of click's
    group = ctx.find_root().command
    click.echo(cls(group, {}, PROG_NAME, COMPLETE_VAR).source(), nl=False)
