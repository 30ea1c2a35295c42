"""The symbolized model every output format, ``top`` and ``diff`` build on.

A trace stores stacks as (code ref, instruction offset) pairs, innermost first. Outputs
want names, files and lines, outermost first. This module does that translation once
per *distinct* stack (a million samples over five thousand stacks symbolizes five
thousand stacks), interning every frame so that later stages compare small integers.

The model is plain data built by a pure function, :func:`build_profile`; samples are
not copied: they stay in the trace's columns and the model only adds what each stack id
means. Names are kept as the target had them (``;``, newlines, ``<``, quotes, non-BMP
characters and all): escaping belongs to each output's own grammar. Only their length is
bounded: a name or file name longer than :data:`MAX_NAME` characters is cut (see there).

Two granularities share one frame table:

* a *line-level* frame is (function, qualname, file, line);
* a *function-level* frame is the same with ``line=None``.

``Profile.function_of[f]`` maps any frame id to its function-level frame id, so
``--no-lines`` output and ``diff``'s function matching are a tuple lookup away, and a
converter never needs to know which granularity it was handed. A line-level frame whose
line is unknown (no line table, or an offset the table does not cover) *is* its
function-level frame: there is nothing to tell them apart by.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field

from flamekit.analysis.filenames import shown_names
from flamekit.symbolize import LineTable, decode
from flamekit.trace import Trace
from flamekit.trace import records as R

#: Frame kinds. ``python``: a Python function. ``thread``: the synthetic root frame
#: ``thread NAME (TID)`` that per-thread output puts under each thread's stacks.
#: ``process``: the synthetic root frame ``process PID: COMMAND LINE`` of each process
#: run of a recording that holds several (a process tree).
#: ``empty``: the one frame of a sample whose thread had no Python frames (stack id 0),
#: so that every selected sample lands on some frame and totals add up in every output.
PYTHON = "python"
THREAD = "thread"
PROCESS = "process"
EMPTY = "empty"
#: ``native``: a C function of a ``record --native`` trace (its file: the object's path).
NATIVE = "native"

#: The name of the frame standing for "no Python frames on this thread's stack".
EMPTY_NAME = "<no Python frames>"

#: Characters kept of a function, file or thread name: a longer one is cut to its first
#: ``MAX_NAME - 1`` characters and ``…``. A trace may hold 1 MiB names, and outputs repeat
#: a name in every stack it is on: 30 names of 1 MiB made a 4 GB collapsed file and took
#: 4.2 GB of memory. Real names are far shorter (Linux paths stop at 4,096 bytes, and
#: a label this long is unreadable in every viewer anyway).
MAX_NAME = 1024
CUT_MARK = "\u2026"


def cap_name(text: str) -> str:
    """``text``, or its first :data:`MAX_NAME` - 1 characters and ``…`` when longer."""
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + CUT_MARK


@dataclass(frozen=True)
class Frame:
    """One interned frame. Equality (and so identity) ignores ``firstlineno``.

    ``qualname`` is the qualified name where the recorded Python had one (3.11+), else the
    plain name; labels use it. ``file`` is the code object's ``co_filename`` as shown:
    relative to its import root (:mod:`flamekit.analysis.filenames`) unless the profile
    keeps full file names ("" for synthetic frames). ``line`` is None at function level
    or when unknown.
    """

    name: str
    qualname: str
    file: str
    line: int | None = None
    kind: str = PYTHON
    #: ``co_firstlineno`` of the first code object seen with this identity (pprof's
    #: start_line, a speedscope hint); informative only, not part of the identity.
    firstlineno: int | None = field(default=None, compare=False)
    #: a native frame's source file (--native-lines; ``file`` is its object), else ""
    source: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, int | None, str]:
        """The identity tuple: two frames with equal keys are the same frame."""
        return (self.kind, self.name, self.qualname, self.file, self.line, self.source)

    def label(self) -> str:
        """The conventional ``function (file:line)`` label, unescaped.

        Function-level frames (and lines that are unknown) drop the ``:line``; synthetic
        frames (thread roots, the empty-stack frame) are just their name. The label always
        ends in ``)`` or ``>``, never in ``<space><digits>``, which flamegraph.pl would
        take for a count.
        """
        if self.kind == NATIVE:
            lib = os.path.basename(self.file) or self.file
            if self.source and self.line is not None:
                return f"{self.qualname} ({os.path.basename(self.source)}:{self.line}) [{lib}]"
            return f"{self.qualname} [{lib}]"
        if self.kind != PYTHON:
            return self.qualname
        if self.line is None:
            return f"{self.qualname} ({self.file})"
        return f"{self.qualname} ({self.file}:{self.line})"


#: (code record, instruction byte offset) -> line number, or None when unknown.
LineResolver = Callable[[R.Code, int], "int | None"]


@dataclass
class Profile:
    """A trace with every stack symbolized into interned frame ids, root (outermost) first.

    ``frames[i]`` is frame id ``i``; ``function_of[i]`` its function-level frame id.
    ``stacks[sid]`` is the line-level frame-id tuple of the trace's stack ``sid``, root
    first; stack id 0 (no Python frames) maps to ``(empty_frame,)``.

    Per-sample data stays in ``trace.columns`` / ``trace.times``; select samples with
    :mod:`flamekit.analysis.filters`.
    """

    trace: Trace
    frames: list[Frame] = field(default_factory=list)
    function_of: list[int] = field(default_factory=list)
    stacks: dict[int, tuple[int, ...]] = field(default_factory=dict)
    _ids: dict[tuple, int] = field(default_factory=dict, repr=False)
    _fn_stacks: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _thread_frames: dict[int, int] = field(default_factory=dict, repr=False)
    _process_frames: dict[tuple[int, bool], int] = field(default_factory=dict, repr=False)
    #: (code ref, offset) -> its line-level frame id, once symbolized (see add_stacks)
    _pairs: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def intern(self, frame: Frame) -> int:
        """The id of ``frame``, adding it (and its function-level frame) if new."""
        key = frame.key
        fid = self._ids.get(key)
        if fid is not None:
            return fid
        if frame.line is None:
            fid = len(self.frames)
            self.frames.append(frame)
            self.function_of.append(fid)
            self._ids[key] = fid
            return fid
        fn = self.intern(
            Frame(frame.name, frame.qualname, frame.file, None, frame.kind, frame.firstlineno)
        )
        fid = len(self.frames)
        self.frames.append(frame)
        self.function_of.append(fn)
        self._ids[key] = fid
        return fid

    @property
    def empty_frame(self) -> int:
        """The id of the frame standing for a stack without Python frames."""
        return self.intern(Frame(EMPTY_NAME, EMPTY_NAME, "", None, EMPTY))

    def stack(self, stack_id: int, lines: bool = True) -> tuple[int, ...]:
        """Frame ids of a trace stack, root first; function-level ones if not ``lines``."""
        if lines:
            return self.stacks[stack_id]
        fs = self._fn_stacks.get(stack_id)
        if fs is None:
            fo = self.function_of
            fs = self._fn_stacks[stack_id] = tuple(fo[f] for f in self.stacks[stack_id])
        return fs

    def thread_label(self, thread_ref: int) -> str:
        """``thread NAME (TID)`` for a thread ref: the per-thread root frame's name."""
        t = self.trace.threads.get(thread_ref)
        if t is None:
            return f"thread ? (ref {thread_ref})"
        tid = t.native_tid if t.native_tid is not None else f"ref {thread_ref}"
        return f"thread {cap_name(t.name) if t.name is not None else '?'} ({tid})"

    def thread_frame(self, thread_ref: int) -> int:
        """The id of the synthetic root frame ``thread NAME (TID)`` for a thread ref."""
        fid = self._thread_frames.get(thread_ref)
        if fid is None:
            # Threads with the same name and TID (a TID reused by a same-named thread)
            # share one root frame: their labels could not tell them apart anyway.
            label = self.thread_label(thread_ref)
            fid = self.intern(Frame(label, label, "", None, THREAD))
            self._thread_frames[thread_ref] = fid
        return fid

    def process_label(self, thread_ref: int) -> str:
        """``process PID: COMMAND LINE`` of the process run a thread belongs to (a long
        command line cut as names are: a label is a frame name)."""
        run = self.trace.run_of(thread_ref)
        return f"process {run.pid}: {cap_name(' '.join(run.process.cmdline) or '?')}"

    def process_frame(self, thread_ref: int, with_thread: bool = False) -> int:
        """The id of the synthetic root frame ``process PID: COMMAND LINE`` of the process
        run a thread belongs to; ``with_thread``: ``... / thread NAME (TID)``, the thread's
        root and its process's in one (per-thread output of a process tree). Two runs
        that share a pid and a command line (a pid reused for the same program) share it:
        their labels could not tell them apart."""
        key = (thread_ref, with_thread)
        fid = self._process_frames.get(key)
        if fid is None:
            label = self.process_label(thread_ref)
            if with_thread:
                label += " / " + self.thread_label(thread_ref)
            fid = self.intern(Frame(label, label, "", None, PROCESS))
            self._process_frames[key] = fid
        return fid

    def label(self, frame_id: int) -> str:
        """The unescaped label of a frame id (see :meth:`Frame.label`)."""
        return self.frames[frame_id].label()


def default_line_resolver() -> LineResolver:
    """The line resolver backed by :mod:`flamekit.symbolize`, holding one decoded table.

    :func:`build_profile` asks for lines table by table, so each table is decoded once and
    dropped before the next: a decoded table costs up to about 50 bytes a byte of table,
    and all of them held at once made one 16 MB table take 774 MB.
    """
    return _LastTable()


def build_profile(
    trace: Trace, resolve_line: LineResolver | None = None, full_filenames: bool = False
) -> Profile:
    """Symbolize every distinct stack of ``trace`` once and intern its frames.

    Each (code ref, offset) pair is resolved once, grouped by line table (see
    :func:`default_line_resolver`), and each stack id mapped once; cost is proportional
    to the distinct stacks and frames, never to the sample count. ``resolve_line`` is
    injectable for tests; by default the symbolizer is used. File names are shown
    relative to their import roots (:func:`file_names`) unless ``full_filenames``.
    """
    prof = Profile(trace)
    add_stacks(prof, trace.stacks, resolve_line or default_line_resolver(), full_filenames)
    prof.stacks[R.EMPTY_STACK] = (prof.empty_frame,)
    return prof


def add_stacks(
    prof: Profile, stack_ids: Iterable[int], resolve: LineResolver, full_filenames: bool = False
) -> None:
    """Symbolize the trace's stacks ``stack_ids`` into ``prof``: all of them for a trace
    read whole, the new ones of each refresh for a trace still being written (a live
    view). A (code ref, offset) pair met before keeps the frame it got.

    File names are shortened against every file the trace holds so far, not just these
    stacks': a live view's later refresh that brings a second file of the same short
    name shows it whole, distinct from the first."""
    trace = prof.trace
    stacks = trace.stacks
    sids = list(stack_ids)
    pair_ids = prof._pairs
    codes = trace.codes
    pairs = _pairs_by_table(trace, (stacks[s] for s in sids), pair_ids)
    native = trace.native_codes
    native_lines = trace.native_lines
    python_files = {c.filename for r, c in codes.items() if r not in native}
    shown = file_names(trace, python_files, full_filenames)
    for pair in pairs:
        code = codes[pair[0]]
        name = cap_name(code.name)
        if pair[0] in native:
            src, line = native_lines.get(pair[0], ("", None))
            frame = Frame(name, name, cap_name(code.filename), line, NATIVE, None, cap_name(src))
            pair_ids[pair] = prof.intern(frame)
            continue
        pair_ids[pair] = prof.intern(
            Frame(
                name,
                name if code.qualname is None else cap_name(code.qualname),
                cap_name(shown[code.filename]),
                resolve(code, pair[1]),
                PYTHON,
                code.firstlineno,
            )
        )
    get = pair_ids.__getitem__
    for sid in sids:
        frames = stacks[sid]
        # the trace has innermost first; we want root first
        prof.stacks[sid] = tuple(map(get, reversed(frames))) if frames else (prof.empty_frame,)


def file_names(trace: Trace, paths: set[str], full: bool = False) -> dict[str, str]:
    """Each recorded file name as outputs show it: relative to the import roots that
    the paths and the command lines of the trace's processes tell, distinct for distinct
    paths (:func:`flamekit.analysis.filenames.display_names`); whole if ``full``."""
    cmdlines = [trace.header.cmdline, *(r.process.cmdline for r in trace.runs)]
    return shown_names(paths, cmdlines, full)


def _pairs_by_table(
    trace: Trace, stacks: Iterable[tuple[tuple[int, int], ...]], known: Container[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Every distinct (code ref, offset) pair of ``stacks`` not in ``known``, those of one
    line table (the same bytes, format and first line) together."""
    pairs: set[tuple[int, int]] = set()
    for frames in stacks:
        pairs.update(frames)
    pairs.difference_update([p for p in pairs if p in known])
    codes = trace.codes
    table_of: dict[tuple[bytes, int, int], int] = {}
    rank: dict[int, int] = {}
    for ref in sorted({ref for ref, _ in pairs}):
        c = codes[ref]
        rank[ref] = table_of.setdefault(
            (c.linetable, c.linetable_format, c.firstlineno), len(table_of)
        )
    return sorted(pairs, key=lambda p: (rank[p[0]], p))


def function_stacks(prof: Profile, stack_ids: Sequence[int]) -> list[tuple[int, ...]]:
    """Function-level frame-id tuples of several stacks (a convenience for ``diff``)."""
    return [prof.stack(s, lines=False) for s in stack_ids]


# -- the symbolizer seam ----------------------------------------------------------------


class _LastTable:
    """A line resolver that keeps the last table it decoded (see default_line_resolver).

    Kept in one place so the rest of the model never depends on the symbolizer's shape.
    """

    def __init__(self) -> None:
        self._code: R.Code | None = None
        self._key: tuple[bytes, int, int] | None = None
        self._table: LineTable | None = None

    def __call__(self, code: R.Code, offset: int) -> int | None:
        if code is not self._code:
            key = (code.linetable, code.linetable_format, code.firstlineno)
            if key != self._key:
                self._table = decode(*key)
                self._key = key
            self._code = code
        assert self._table is not None
        return self._table.line(offset)
