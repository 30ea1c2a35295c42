"""Comparing two recordings: matched frames, ranked changes in share, and their outputs.

:mod:`flamekit.diffing.model` matches two filtered profiles into a :class:`Diff` (pure
data); :mod:`flamekit.diffing.outputs` turns it into the table, JSON and differential
folded stacks; :mod:`flamekit.diffing.svg` into a differential flame graph. The
``flamekit diff`` command (:mod:`flamekit.commands.diff`) only loads, filters and writes.
"""

from flamekit.diffing.model import Diff, Key, Row, Side, build_diff, file_key, rank
from flamekit.diffing.outputs import render_difffolded, render_json, render_table

__all__ = [
    "Diff",
    "Key",
    "Row",
    "Side",
    "build_diff",
    "file_key",
    "rank",
    "render_difffolded",
    "render_json",
    "render_table",
]
