"""File names as people read them: relative to the import root a module was loaded from.

A recorded ``co_filename`` is whole, ``/home/app/venv/lib/python3.12/site-packages/pylint/
__init__.py``; py-spy shows ``pylint/__init__.py``, which is the name a reader knows the
module by. Every output shows files shortened here: the symbolized model
(:func:`flamekit.analysis.profile.build_profile`) and the live snapshot
(:mod:`flamekit.analysis.snapshot`) ask :func:`display_names` once for all their files,
so collapsed, speedscope, cpuprofile, svg, pprof, ``top``, ``diff`` and ``dump`` agree.
The trace keeps the full paths (``--full-filenames`` shows them).

The roots are derived offline, from the recorded paths and the command lines the trace
already holds (:func:`import_roots`), rather than read from the target's ``sys.path`` at
record time: the recorder stays a reader of frames (reading a list of str objects per
process is object-reader work, on every supported version, before the first sample), the
format needs no new record, and every trace ever recorded gets short names too. What
that cannot know is a ``sys.path`` entry added by ``PYTHONPATH``, a ``.pth`` file or the
program itself, other than those below: a file under one stays whole, which is never
wrong, only long. The roots are:

* a ``site-packages`` or ``dist-packages`` directory (virtualenvs, ``--user``, Debian);
* the standard library, ``…/lib/pythonX.Y``: told by its shape, whatever version the
  trace records (a process tree may run several, and an older trace records only the
  first process's);
* the script's own directory (``sys.path[0]``), from the command line: the script's
  absolute path, or the file whose path ends with a relative one; for ``-m pkg.mod``,
  the directory holding ``pkg``.

The longest root that holds a file wins (site-packages lies inside lib/pythonX.Y). Names
must stay distinct where outputs key frames by name (a function of two venvs' copies of a
module would merge), so files whose short names collide keep their full paths.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Iterable, Sequence

#: Directories that are import roots wherever they are.
PACKAGE_DIRS = ("site-packages", "dist-packages")
#: Options of the interpreter that take a value as the next argument (``-W error``).
_VALUED = {"-W", "-X", "-Q"}


#: The standard library's directory name under ``lib`` (or ``lib64``): ``python3.12``,
#: the free-threaded ``python3.13t``, ``python2.7``.
_STDLIB_DIR = re.compile(r"python\d+\.\d+t?")


def script_of(cmdline: Sequence[str]) -> tuple[str | None, str | None]:
    """(script path, module) the interpreter command line runs; None for what it does not
    (``-c``, an interactive session, a program that is not ``python ...``)."""
    args = iter(cmdline[1:])
    for arg in args:
        if arg == "-c" or arg == "-":
            return None, None
        if arg == "-m":
            return None, next(args, None)
        if arg in _VALUED:
            next(args, None)
        elif arg.startswith("-m"):
            return None, arg[2:]
        elif not arg.startswith("-"):
            return arg, None
    return None, None


def _script_root(cmdline: Sequence[str], paths: Sequence[str]) -> str | None:
    script, module = script_of(cmdline)
    if script is not None:
        script = os.path.normpath(script)
        if script.startswith("/"):
            return os.path.dirname(script)
        if script.startswith(".."):
            return None  # relative to a cwd the trace does not know
        tail = "/" + script
        found = next((p for p in paths if p.endswith(tail)), None)
        return os.path.dirname(found) if found is not None else None
    if module:
        rel = module.replace(".", "/")
        for tail in (f"/{rel}.py", f"/{rel}/__main__.py"):
            found = next((p for p in paths if p.endswith(tail)), None)
            if found is not None:
                return found[: -len(tail)] or None
    return None


def import_roots(paths: Iterable[str], cmdlines: Iterable[Sequence[str]]) -> frozenset[str]:
    """The import roots of a recording: directories (no trailing ``/``) that files were
    imported from, found in ``paths`` (the recorded file names) and in ``cmdlines``, the
    command line of each process recorded."""
    absolute = sorted({p for p in paths if p.startswith("/")})
    roots: set[str] = set()
    for p in absolute:
        parts = p.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in PACKAGE_DIRS or (
                parts[i - 1] in ("lib", "lib64") and _STDLIB_DIR.fullmatch(part)
            ):
                roots.add("/".join(parts[: i + 1]))
    for cmdline in cmdlines:
        root = _script_root(cmdline, absolute)
        if root and root != "/":
            roots.add(root)
    return frozenset(roots)


def shorten(path: str, roots: Iterable[str]) -> str:
    """``path`` relative to the longest root holding it; itself when none does."""
    best = ""
    for root in roots:
        if len(root) > len(best) and path.startswith(root + "/") and len(path) > len(root) + 1:
            best = root
    return path[len(best) + 1 :] if best else path


def display_names(paths: Iterable[str], roots: Iterable[str]) -> dict[str, str]:
    """Each path's shown name: shortened (:func:`shorten`), but whole wherever two
    different paths would show alike (two venvs' ``pylint/__init__.py``, or a short name
    that is another file's whole name), so that no two files merge in an output. The
    names are distinct for distinct paths."""
    roots = tuple(roots)
    names = {p: shorten(p, roots) for p in set(paths)}
    while True:
        owners: dict[str, list[str]] = {}
        for p, name in names.items():
            owners.setdefault(name, []).append(p)
        clashes = [p for group in owners.values() if len(group) > 1 for p in group]
        changed = [p for p in clashes if names[p] != p]
        if not changed:
            return names
        for p in changed:  # whole again; that may clash with a name kept: look again
            names[p] = p


def shown_names(
    paths: Iterable[str], cmdlines: Iterable[Sequence[str]], full: bool = False
) -> dict[str, str]:
    """Each of ``paths`` as outputs show it: :func:`display_names` under the roots
    :func:`import_roots` finds for them and the processes' ``cmdlines``; with ``full``,
    whole."""
    paths = set(paths)
    return {p: p for p in paths} if full else display_names(paths, import_roots(paths, cmdlines))
