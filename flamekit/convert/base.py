"""What an output format is, and the registry ``convert`` looks formats up in.

A format is one module in ``flamekit.convert`` with one entry point: a function taking
the filtered samples (a :class:`~flamekit.analysis.filters.Selection`, which carries the symbolized
:class:`~flamekit.analysis.profile.Profile`) and :class:`ConvertOptions`, and yielding the output
as ``bytes`` chunks. Yielding chunks lets a format stream (collapsed, cpuprofile's sample
list) while the caller decides where bytes go (an atomically replaced file, or stdout),
so no format opens files or handles ``-o -`` itself.

A format also says how big its output will be, before making it (:class:`Estimate`, from
the shape of the selection: see :mod:`flamekit.analysis.budget`), so that an output over
the budget is refused before a byte of it is written.

A module registers itself at import time::

    def estimate(sel: Selection, opts: ConvertOptions) -> Estimate: ...

    @register("collapsed", ".collapsed", "Folded stacks for flamegraph.pl, ...", estimate)
    def convert(sel: Selection, opts: ConvertOptions) -> Iterator[bytes]: ...

:func:`formats` imports every module of the package once, so adding a format is adding
a module; nothing here needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flamekit.analysis.budget import Estimate
from flamekit.analysis.filters import Selection
from flamekit.errors import UsageError


@dataclass(frozen=True)
class ConvertOptions:
    """Output choices that are not sample selection (that is FilterOptions' job).

    ``lines``: label frames ``function (file:line)`` (True) or merge a function's lines
    into ``function (file)`` (False). ``title``: a human title for formats that show one
    ("" lets the format pick, e.g. the trace's file name or command line).
    """

    lines: bool = True
    title: str = ""


#: A converter: filtered samples + options -> the output's bytes, in order.
Converter = Callable[[Selection, ConvertOptions], Iterable[bytes]]
#: A format's size estimate, for a ``budget`` (bytes; None: none). It may return a ceiling
#: once one shows the output within the budget, or stop counting past the budget (and
#: never below the default one) with the count so far, a lower bound
#: (``Estimate.at_least``); :func:`flamekit.analysis.budget.counting_limit`.
Estimator = Callable[[Selection, ConvertOptions, "int | None"], Estimate]


@dataclass(frozen=True)
class Format:
    """A registered output format."""

    name: str  #: what ``--to`` accepts
    extension: str  #: appended to the input's stem for the default output path
    description: str  #: one line for ``--help`` and the unknown-format error
    convert: Converter
    estimate: Estimator


_REGISTRY: dict[str, Format] = {}
#: The order formats are listed in; formats not named here follow, alphabetically.
_ORDER = ("collapsed", "speedscope", "cpuprofile", "svg", "pprof")
_loaded = False


def register(
    name: str, extension: str, description: str, estimate: Estimator
) -> Callable[[Converter], Converter]:
    """Decorator registering a converter function under ``name`` (see the module doc)."""

    def deco(fn: Converter) -> Converter:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.convert is not fn:
            raise RuntimeError(f"output format {name!r} registered twice")
        _REGISTRY[name] = Format(name, extension, description, fn, estimate)
        return fn

    return deco


def formats() -> dict[str, Format]:
    """Every available format, by name, in display order (importing the modules once)."""
    global _loaded
    if not _loaded:
        import flamekit.convert as pkg

        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name != "base" and not mod.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
        _loaded = True
    rank = {n: i for i, n in enumerate(_ORDER)}
    names = sorted(_REGISTRY, key=lambda n: (rank.get(n, len(rank)), n))
    return {n: _REGISTRY[n] for n in names}


def get_format(name: str) -> Format:
    """The format called ``name``; a UsageError listing the valid names otherwise."""
    fmts = formats()
    fmt = fmts.get(name)
    if fmt is None:
        raise UsageError(f"unknown format {name!r} (choose from: {', '.join(fmts)})")
    return fmt
