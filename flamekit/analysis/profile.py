"""The symbolized model every output format, ``top`` and ``diff`` build on.

A trace stores stacks as (code ref, instruction offset) pairs, innermost first. Outputs
want names, files and lines, outermost first. This module does that translation once
per *distinct* stack (a million samples over five thousand stacks symbolizes five
thousand stacks), interning every frame so that later stages compare small integers.

The model is plain data built by a pure function, :func:`build_profile`; samples are
not copied: they stay in the trace's columns and the model only adds what each stack id
means. Names are kept exactly as the target had them (``;``, newlines, ``<``, quotes,
non-BMP characters and all): escaping belongs to each output's own grammar.

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flamekit.symbolize import Symbolizer
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

#: The name of the frame standing for "no Python frames on this thread's stack".
EMPTY_NAME = "<no Python frames>"


@dataclass(frozen=True)
class Frame:
    """One interned frame. Equality (and so identity) ignores ``firstlineno``.

    ``qualname`` is the qualified name where the recorded Python had one (3.11+), else the
    plain name; labels use it. ``file`` is the code object's ``co_filename`` ("" for
    synthetic frames). ``line`` is None at function level or when unknown.
    """

    name: str
    qualname: str
    file: str
    line: int | None = None
    kind: str = PYTHON
    #: ``co_firstlineno`` of the first code object seen with this identity (pprof's
    #: start_line, a speedscope hint); informative only, not part of the identity.
    firstlineno: int | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, int | None]:
        """The identity tuple: two frames with equal keys are the same frame."""
        return (self.kind, self.name, self.qualname, self.file, self.line)

    def label(self) -> str:
        """The conventional ``function (file:line)`` label, unescaped.

        Function-level frames (and lines that are unknown) drop the ``:line``; synthetic
        frames (thread roots, the empty-stack frame) are just their name. The label always
        ends in ``)`` or ``>``, never in ``<space><digits>``, which flamegraph.pl would
        take for a count.
        """
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
    _process_frames: dict[int, int] = field(default_factory=dict, repr=False)

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
        return f"thread {t.name if t.name is not None else '?'} ({tid})"

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

    def process_frame(self, thread_ref: int) -> int:
        """The id of the synthetic root frame ``process PID: COMMAND LINE`` of the process
        run a thread belongs to. Two runs that share a pid and a command line (a pid
        reused for the same program) share it: their labels could not tell them apart."""
        fid = self._process_frames.get(thread_ref)
        if fid is None:
            label = self.trace.run_of(thread_ref).label()
            fid = self.intern(Frame(label, label, "", None, PROCESS))
            self._process_frames[thread_ref] = fid
        return fid

    def label(self, frame_id: int) -> str:
        """The unescaped label of a frame id (see :meth:`Frame.label`)."""
        return self.frames[frame_id].label()


def default_line_resolver() -> LineResolver:
    """The line resolver backed by :mod:`flamekit.symbolize` (cached per code object)."""
    return _symbolize_resolver()


def build_profile(trace: Trace, resolve_line: LineResolver | None = None) -> Profile:
    """Symbolize every distinct stack of ``trace`` once and intern its frames.

    Each (code ref, offset) pair is resolved once, each stack id mapped once; cost is
    proportional to the distinct stacks and frames, never to the sample count.
    ``resolve_line`` is injectable for tests; by default the shared symbolizer is used.
    """
    resolve = resolve_line or default_line_resolver()
    prof = Profile(trace)
    pair_ids: dict[tuple[int, int], int] = {}
    codes = trace.codes
    for sid, frames in trace.stacks.items():
        out: list[int] = []
        for pair in reversed(frames):  # the trace has innermost first; we want root first
            fid = pair_ids.get(pair)
            if fid is None:
                code = codes[pair[0]]
                line = resolve(code, pair[1])
                fid = prof.intern(
                    Frame(
                        code.name,
                        code.name if code.qualname is None else code.qualname,
                        code.filename,
                        line,
                        PYTHON,
                        code.firstlineno,
                    )
                )
                pair_ids[pair] = fid
            out.append(fid)
        prof.stacks[sid] = tuple(out) if out else (prof.empty_frame,)
    prof.stacks[R.EMPTY_STACK] = (prof.empty_frame,)
    return prof


def function_stacks(prof: Profile, stack_ids: Sequence[int]) -> list[tuple[int, ...]]:
    """Function-level frame-id tuples of several stacks (a convenience for ``diff``)."""
    return [prof.stack(s, lines=False) for s in stack_ids]


# -- the symbolizer seam ----------------------------------------------------------------


def _symbolize_resolver() -> LineResolver:
    """A fresh :class:`flamekit.symbolize.Symbolizer`'s ``line_for_code``.

    Kept in one place so the rest of the model never depends on the symbolizer's shape.
    One symbolizer per profile: it decodes each distinct line table once and is dropped
    with the profile.
    """
    return Symbolizer().line_for_code
