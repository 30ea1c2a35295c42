"""Analysis of a trace, below every output: pure functions of the trace's data.

:mod:`~flamekit.analysis.profile` symbolizes stacks into interned frames;
:mod:`~flamekit.analysis.filters` selects samples; :mod:`~flamekit.analysis.ranking`
counts self and total samples per frame (``top``, ``diff``); :mod:`~flamekit.analysis.summary`
is what ``info`` shows; :mod:`~flamekit.analysis.escape` escapes names for text outputs and
:mod:`~flamekit.analysis.chunks` turns a format's text into byte chunks. Nothing here
imports click or the recorder, prints, or exits.
"""
