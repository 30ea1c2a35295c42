"""Why flamekit may not read or trace a process, and what fixes it, in one line.

Reading another process's memory and tracing it pass the same kernel check
(``ptrace_may_access``, attach mode): the target must run as flamekit's user (all of its
real, effective and saved uids) and be dumpable, or flamekit must hold CAP_SYS_PTRACE;
then Yama (``kernel.yama.ptrace_scope``) may refuse anyway: at 1 anything but a
parent tracing its descendant, at 2 anything without CAP_SYS_PTRACE, at 3 everything.
"Permission denied" alone names none of these, and each has a different fix: another
user (sudo), a capability a container dropped (docker's ``--cap-add SYS_PTRACE``, the
pod's ``securityContext``), or a sysctl. The facts that tell them apart are all in /proc
(:func:`gather`), and the advice is a pure function of them (:func:`advice`), so every
case can be tested, including those this machine cannot be put in.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from flamekit.record.proc import launcher
from flamekit.record.proc.status import ints, read_status

CAP_SYS_PTRACE = 19  #: linux/capability.h: its bit in CapEff
#: /proc/self/uid_map of a process in the first user namespace: every uid is itself.
_IDENTITY_MAP = ("0", "0", "4294967295")

NO_CAP = (
    "flamekit runs as root but without CAP_SYS_PTRACE (containers drop it): add it "
    "(docker run --cap-add SYS_PTRACE; in Kubernetes, the container's securityContext: "
    'capabilities: add: ["SYS_PTRACE"]), or attach from the host with the pid it sees'
)
SCOPE_3 = (
    "kernel.yama.ptrace_scope is 3 here: no process may trace another, root included, "
    "until the machine restarts with a lower setting"
)
SCOPE_2 = (
    "kernel.yama.ptrace_scope is 2 here: only a process with CAP_SYS_PTRACE may trace "
    "another: run flamekit as root, or lower it (sysctl kernel.yama.ptrace_scope=0)"
)
SCOPE_1 = (
    "kernel.yama.ptrace_scope is 1 here: without CAP_SYS_PTRACE only a process's "
    "ancestors may trace it: launch the target under flamekit (flamekit record -- "
    "COMMAND), run flamekit as root, or sysctl kernel.yama.ptrace_scope=0"
)
USER_NAMESPACE = (
    "flamekit runs in a user namespace (a rootless container), whose capabilities do "
    "not reach processes outside it: run flamekit in the target's container, or on the "
    "host as root"
)
UNKNOWN = (
    "run flamekit as the target's user or as root; check kernel.yama.ptrace_scope; in a "
    "container, add CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE; Kubernetes: "
    'securityContext: capabilities: add: ["SYS_PTRACE"])'
)
NOTHING_KNOWN = (
    "flamekit may trace it as far as users, capabilities and Yama go: a security module "
    "(AppArmor, SELinux) or a seccomp filter on flamekit forbids it"
)


@dataclass(frozen=True)
class AccessFacts:
    """What decides whether flamekit may trace the target, as /proc tells it."""

    uid: int  #: flamekit's real uid (what the kernel compares)
    user: str  #: its name for messages, e.g. "alice (uid 1000)"
    cap_sys_ptrace: bool | None  #: in flamekit's effective set (None: unknown)
    user_namespace: bool  #: flamekit runs in a user namespace other than the first
    ptrace_scope: int | None  #: Yama's setting (None: no Yama here)
    target_uids: tuple[int, ...]  #: the target's real, effective and saved uids (): unknown
    target_user: str  #: its effective uid for messages, e.g. "alice (uid 1000)"
    target_login: str  #: that uid as ``sudo -u`` takes it: "alice", or "#1000"
    #: False: the target is not dumpable (it changed credentials, or cleared the flag),
    #: which only CAP_SYS_PTRACE overrides; None: cannot tell (a root-owned target)
    target_dumpable: bool | None
    #: the target holds capabilities flamekit does not (a tracer's must include its
    #: target's), None: unknown
    target_more_caps: bool | None
    descendant: bool  #: the target is flamekit's child, grandchild...


def advice(pid: int, facts: AccessFacts) -> str:
    """Why access to ``pid`` is denied and what to do, as one text: every cause that
    applies, each with its fix, most fundamental first."""
    f = facts
    if f.ptrace_scope == 3:
        return SCOPE_3  # nothing else helps
    if f.cap_sys_ptrace is None or not f.target_uids:
        return UNKNOWN
    causes = []
    if f.cap_sys_ptrace:
        if f.user_namespace:
            causes.append(USER_NAMESPACE)
    elif f.uid == 0:
        causes.append(NO_CAP)  # the capability is what lets root past every check below
    else:
        if any(u != f.uid for u in f.target_uids[:3]):
            fix = (
                "run flamekit as root"
                if f.target_uids[1:2] == (0,)
                else f"run flamekit as that user (sudo -u {f.target_login}) or as root"
            )
            causes.append(f"pid {pid} runs as {f.target_user} and flamekit as {f.user}: {fix}")
        elif f.target_more_caps:
            causes.append(
                f"pid {pid} holds capabilities flamekit does not, and only a tracer with all "
                "of them (or CAP_SYS_PTRACE) may read it: run flamekit as root"
            )
        elif f.target_dumpable is False:
            causes.append(
                f"pid {pid} is not dumpable (it changed its user or group, or cleared the "
                "flag with prctl(PR_SET_DUMPABLE, 0)): only root (CAP_SYS_PTRACE) may "
                "read it: run flamekit as root"
            )
        if f.ptrace_scope == 2:
            causes.append(SCOPE_2)
        elif f.ptrace_scope == 1 and not f.descendant:
            causes.append(SCOPE_1)
    return "; ".join(causes) if causes else NOTHING_KNOWN


def denied(what: str, pid: int) -> str:
    """``what`` ("permission denied reading the memory of pid 12") with the advice the
    facts gathered now give."""
    return f"{what}: {advice(pid, gather(pid))}"


def gather(pid: int) -> AccessFacts:
    """The facts, read now from /proc (each unknown one as the type's 'unknown')."""
    me = read_status("/proc/self/status")
    target = read_status(f"/proc/{pid}/status")
    effective, permitted = _caps(me.get("CapEff")), _caps(me.get("CapPrm"))
    theirs = _caps(target.get("CapPrm"))
    uids = ints(target.get("Uid"))[:3]
    uid = os.getuid()
    return AccessFacts(
        uid=uid,
        user=_user(uid),
        cap_sys_ptrace=None if effective is None else bool(effective >> CAP_SYS_PTRACE & 1),
        user_namespace=_in_user_namespace(),
        ptrace_scope=_ptrace_scope(),
        target_uids=uids,
        target_user=_user(uids[1]) if len(uids) > 1 else "?",
        target_login=_login(uids[1]) if len(uids) > 1 else "?",
        target_dumpable=_dumpable(pid, uids),
        target_more_caps=None if permitted is None or theirs is None else bool(theirs & ~permitted),
        descendant=_descendant(pid),
    )


def _caps(field: str | None) -> int | None:
    """A capability set of a status file (hex), None if absent."""
    try:
        return int(field, 16) if field else None
    except ValueError:
        return None


def _user(uid: int) -> str:
    login = _login(uid)
    return f"uid {uid}" if login.startswith("#") else f"{login} (uid {uid})"


def _login(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _ptrace_scope() -> int | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    return tuple(lines[0].split()) != _IDENTITY_MAP


def _dumpable(pid: int, uids: tuple[int, ...]) -> bool | None:
    """A process that is not dumpable has its /proc files owned by root, whoever it runs
    as: so a non-root target's files owned by root say it is not."""
    if len(uids) < 2 or uids[1] == 0:
        return None
    try:
        return os.stat(f"/proc/{pid}/status").st_uid != 0
    except OSError:
        return None


def _descendant(pid: int) -> bool:
    me = os.getpid()
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = launcher.ppid(pid)
        if pid == me:
            return True
    return False
