"""Thread names of a running CPython process, read from its memory.

A thread's name (``threading.current_thread().name``) lives only in Python objects: the
``threading`` module keeps ``_active``, a dict from ``threading.get_ident()`` (the
``thread_id`` of the thread state, so of :class:`~flamekit.record.walk.ThreadStack`)
to the Thread object, whose ``_name`` attribute is the name. Nothing is injected and the
target need not cooperate, so this module follows that chain the way the interpreter
would, from outside (the approach py-spy takes; the code here is our own)::

    interp->modules (sys.modules)  --"threading"-->  module  --md_dict-->  module dict
    --"_active"-->  dict {int ident: Thread}  --ident-->  Thread  --"_name"-->  str

Every object on the way is read by :class:`~flamekit.record.objects.ObjectReader`
(shared with the code reader): this module only knows the chain. The interpreters are
the walker's (``StackWalker.interpreters``, as of its last walk).

Only threads started through ``threading`` have names (plus ``Dummy-N`` for foreign
threads that called ``threading.current_thread()``); others are simply absent.

**Consistency.** The target runs while we read (the sampler resumes it before asking),
so a Thread can end and a name can be replaced, its str freed and the memory reused,
between two of our reads. Every word followed to a name (the ``_active`` entry and table
pointers, the instance's dict/values pointers and slot, the str's header and
characters) comes back from the object reader as a check, and all of them are read a
second time, in ONE system call: a name is kept only if everything reads back the same
and the objects still look live; then it was the thread's name at that instant.
Anything else is left out for the caller's next try. The object reader checks every
pointer for shape, every object's type against the type objects' addresses and every
count against a bound, and :meth:`ThreadNames.lookup` never raises.

**Cost.** The sampler asks only when it sees a new thread, with back-off; a lookup is
still kept small. The ``_active`` dict's address is cached per interpreter (threading
mutates it in place for the module's life), so sys.modules is walked only on the first
lookup or when the cached dict stops being a dict. A lookup then makes about a dozen
reads, however many threads are asked for (the object reader runs the threads' reads
side by side, nearby ranges merged into one, since the kernel charges per range).

On 3.14+, ``Thread.start`` also gives the OS thread its name (``pthread_setname_np``,
at most 15 bytes), so ``/proc/PID/task/TID/comm`` is the fallback for a thread whose name
memory does not give; not at the first torn read (comm is cut short, and a rename made
from another thread never reaches it), only when memory fails repeatedly or entirely.
"""

from __future__ import annotations

from collections.abc import Sequence

from flamekit.record.bounds import MAX_INTERPRETERS, MAX_THREADS, bad_pointer
from flamekit.record.code_reader import CodeReader
from flamekit.record.objects import Check, Read
from flamekit.record.objects.parse import Q
from flamekit.record.target import PythonTarget

#: The module, its dict of live threads, and the Thread attribute holding the name.
MODULE_NAME = "threading"
ACTIVE_NAME = "_active"
NAME_ATTRIBUTE = "_name"
#: Versions whose attribute is spelled differently (2.7's ``self.__name`` is mangled).
NAME_ATTRIBUTE_BY_VERSION = {(2, 7): "_Thread__name"}
#: From this version on Thread.start() sets the OS thread name (read back from comm).
COMM_NAMES_FROM = (3, 14)
#: A thread found in _active whose name read was torn gets comm only after this many
#: lookups in a row tore (a race resolves on the next try; a persistent failure not).
COMM_AFTER_TORN = 3
MAX_TORN_TRACKED = 4096


class ThreadNames:
    """Names of a target's Python threads by ``threading.get_ident()`` value.

    Create once per target (cheap: nothing is read until the first lookup) and call
    :meth:`lookup` when threads appear; see the module docstring for how and at what
    cost. Objects are read by the code reader's object reader (one set of caches).
    """

    def __init__(self, target: PythonTarget, reader: CodeReader) -> None:
        self.target = target
        self.memory = target.memory
        self.objects = reader.objects
        self.version = target.layout.version
        self.attribute = NAME_ATTRIBUTE_BY_VERSION.get(self.version, NAME_ATTRIBUTE)
        #: interpreter address -> address of its threading._active dict
        self._active: dict[int, int] = {}
        #: the last lookup found sys.modules without threading: nothing to find until the
        #: program imports it (the caller may wait longer before it asks again)
        self.without_threading = False
        self._process_comm: str | None = None
        #: idents located in _active whose name read came back torn (this lookup), and
        #: how many lookups in a row that happened (for the comm fallback)
        self._torn: set[int] = set()
        self._torn_counts: dict[int, int] = {}
        #: idents the last lookup named from a comm that filled the kernel's 15 bytes
        #: (perhaps cut short): worth asking again
        self.provisional: set[int] = set()

    # -- public ------------------------------------------------------------------------

    def lookup(self, thread_ids: list[int], interpreters: Sequence[int]) -> dict[int, str]:
        """Names of those of ``thread_ids`` that can be found; others are absent.

        ``interpreters``: the PyInterpreterState addresses to look in (the walker's
        ``interpreters``, as of its last walk). Never raises: a torn read, a process
        that exited or a target without ``threading`` all just mean fewer (or no) names.
        """
        want = {i for i in thread_ids if type(i) is int and 0 < i < 1 << 64}
        if not want:
            return {}
        found: dict[int, str] = {}
        self._torn = set()
        self.provisional = set()
        self.without_threading = False
        try:
            found = self._from_memory(want, interpreters)
        except Exception:  # garbage, a vanished process: never the sampler's problem
            found = {}
        missing = want - found.keys()
        if missing and self.version >= COMM_NAMES_FROM:
            # comm holds at most 15 bytes and misses renames made from other threads, so
            # a name that was only torn this time waits for the caller's next try first.
            torn = self._torn_counts
            for ident in want:
                if ident in self._torn and ident in missing:
                    torn[ident] = torn.get(ident, 0) + 1
                else:
                    torn.pop(ident, None)
            if len(torn) > MAX_TORN_TRACKED:
                torn.clear()
            missing = {i for i in missing if torn.get(i, 0) not in range(1, COMM_AFTER_TORN)}
            try:
                found.update(self._from_comm(missing, interpreters or ()))
            except Exception:
                pass
        return {i: n for i, n in found.items() if i in want}

    # -- the chain ---------------------------------------------------------------------

    def _from_memory(self, want: set[int], interpreters: Sequence[int]) -> dict[int, str]:
        """Names read from memory, each confirmed by a second, near-atomic read.

        The target runs while we read: a Thread can end, a name can be replaced and its
        str freed and reused between two reads. So every word followed to reach a name
        (the _active entry, the attribute slot, the str's header and characters) is read
        again, all in ONE system call; a name is kept only if nothing changed, which
        means it was the thread's name at that instant. Threads that failed are tried
        once more."""
        found: dict[int, str] = {}
        unnamed = False  # a Thread object found whose name could not be read
        for _attempt in range(2):
            threads: dict[int, Read[int]] = {}  # ident -> the Thread object
            todo = want - found.keys()
            for interp in interpreters[:MAX_INTERPRETERS]:
                threads.update(self._active_threads(interp, todo - threads.keys()))
                if len(threads) == len(todo):
                    break
            if not threads:
                break
            named = self._thread_names(threads)
            unnamed = len(named) < len(threads)
            idents = list(named)
            held = self.objects.hold([named[i][1] for i in idents])
            found.update((i, named[i][0]) for i, ok in zip(idents, held) if ok)
            self._torn = (self._torn | threads.keys()) - found.keys()
            if len(found) == len(want) or not named:
                break
        if unnamed:
            self.objects.forget()  # a stale cached type or key could be why: re-read
        return found

    def _active_threads(self, interp: int, want: set[int]) -> dict[int, Read[int]]:
        """ident -> the Thread object (with its checks) for the wanted idents here."""
        if not want:
            return {}
        for _attempt in range(2):
            active = self._active.get(interp)
            if active is None:
                active = self._find_active(interp)
                if active is None:
                    return {}
                self._active[interp] = active
            found = self.objects.dict_int_lookup(active, want)
            if found is not None:
                return found
            del self._active[interp]  # no longer a dict: find it again, once
        return {}

    def _find_active(self, interp: int) -> int | None:
        """sys.modules["threading"].__dict__["_active"], or None (not imported yet)."""
        objects = self.objects
        modules = objects.sys_modules([interp])[0]
        module = objects.dict_lookup([modules.value], MODULE_NAME)[0] if modules else None
        if modules is not None and module is None:
            self.without_threading = True
        md_dict = objects.module_dicts([module.value])[0] if module else None
        active = objects.dict_lookup([md_dict.value], ACTIVE_NAME)[0] if md_dict else None
        if active is None:
            return None
        tp = objects.types_of([active.value])[0]
        return active.value if tp and tp.value == objects.type_address("PyDict_Type") else None

    def _thread_names(self, threads: dict[int, Read[int]]) -> dict[int, tuple[str, list[Check]]]:
        """ident -> (the name attribute's text, every check on the way to it)."""
        idents = list(threads)
        attrs = self.objects.attributes([threads[i].value for i in idents], self.attribute)
        picked = [(i, a) for i, a in zip(idents, attrs) if a is not None]
        texts = self.objects.strs([a.value for _, a in picked], utf8_safe=True)
        out = {}
        for (ident, attr), text in zip(picked, texts):
            if text is not None:
                out[ident] = (text.value, [*threads[ident].checks, *attr.checks, *text.checks])
        return out

    def _from_comm(self, idents: set[int], interpreters: Sequence[int]) -> dict[int, str]:
        """Names from /proc/PID/task/TID/comm for threads Python named (3.14+).

        Threads whose comm is the process's own (the main thread, threads not started by
        threading) are left out: that is the program's name, not a thread name. A name
        set from another thread (``t.name = ...``) does not reach the OS, so comm can be
        stale: memory always comes first."""
        tids = self._native_tids(idents, interpreters)
        if not tids:
            return {}
        pid = self.target.pid
        if self._process_comm is None:
            self._process_comm = (_read_comm(f"/proc/{pid}/comm") or ("", False))[0]
        paths = {ident: f"/proc/{pid}/task/{tid}/comm" for ident, tid in tids.items()}
        first = {ident: _read_comm(path) for ident, path in paths.items()}
        out = {}
        for ident, path in paths.items():
            comm = first[ident]
            # Read twice: a rename racing the kernel's copy can tear it.
            if comm and comm[0] and comm[0] != self._process_comm and _read_comm(path) == comm:
                out[ident] = comm[0]
                if comm[1]:
                    self.provisional.add(ident)
        return out

    def _native_tids(self, idents: set[int], interpreters: Sequence[int]) -> dict[int, int]:
        """ident -> kernel tid as /proc here names it, from the thread states (3.11+ keep
        both)."""
        lay = self.target.layout
        if lay.tstate_native_thread_id is None:
            return {}
        size = max(lay.tstate_thread_id, lay.tstate_native_thread_id, lay.tstate_next) + 8
        out: dict[int, int] = {}
        for interp in interpreters[:MAX_INTERPRETERS]:
            (ts,) = Q.unpack(self.memory.read(interp + lay.interp_threads_head, 8))
            seen: set[int] = set()
            while ts and not bad_pointer(ts) and ts not in seen and len(seen) < MAX_THREADS:
                seen.add(ts)
                raw = self.memory.read(ts, size)
                (ident,) = Q.unpack_from(raw, lay.tstate_thread_id)
                (tid,) = Q.unpack_from(raw, lay.tstate_native_thread_id)
                if ident in idents and 0 < tid < 1 << 22:
                    host = self.target.tids.host(tid)  # a container's target has its own ids
                    if host is not None:
                        out[ident] = host
                (ts,) = Q.unpack_from(raw, lay.tstate_next)
        return out


#: Longest OS thread name on Linux (TASK_COMM_LEN 16, with the NUL).
COMM_BYTES = 15


def _read_comm(path: str) -> tuple[str, bool] | None:
    """A thread's comm as text, and whether it fills the kernel's 15 bytes (so may be a
    longer name cut short); None if unreadable or not UTF-8.

    Names longer than 15 bytes are cut by the kernel, possibly inside a character: only
    then, and only at the end, are up to 3 bytes of a partial character dropped."""
    try:
        with open(path, "rb") as f:
            raw = f.read().rstrip(b"\n")
    except OSError:
        return None
    full = len(raw) == COMM_BYTES
    for cut in range(4) if full else range(1):
        try:
            return raw[: len(raw) - cut].decode("utf-8"), full
        except UnicodeDecodeError:
            continue
    return None
