"""Permission denied, explained: each cause flamekit can be refused for, with its fix.

Real conditions where this machine can be put in them: root without CAP_SYS_PTRACE (as
in a container), another user, a target that is not dumpable or holds capabilities
flamekit lacks, flamekit in a user namespace. Yama's ``kernel.yama.ptrace_scope`` cannot
be set here (this kernel has no Yama: /proc/sys/kernel/yama is absent), so its cases
are tested on the advice as the pure function of the facts it is.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flamekit.record.proc import access
from flamekit.record.proc.access import AccessFacts, advice
from flamekit.record.proc.status import ints, parse_status

NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
DAEMON = ["setpriv", "--reuid", "daemon", "--regid", "daemon", "--clear-groups"]
NO_PTRACE_CAP = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"]
READY = "print('ready', flush=True); import time; time.sleep(120)"
SLEEPER = ["/usr/bin/python3.11", "-c", READY]
#: prctl(PR_SET_DUMPABLE, 0), then ready
NOT_DUMPABLE = [
    "/usr/bin/python3.11",
    "-c",
    f"import ctypes; ctypes.CDLL(None).prctl(4, 0); {READY}",
]

PID = 4321
#: flamekit as alice, the target alice's too, everything allowed as far as facts go
ALICE = AccessFacts(
    uid=1000,
    user="alice (uid 1000)",
    cap_sys_ptrace=False,
    user_namespace=False,
    ptrace_scope=0,
    target_uids=(1000, 1000, 1000),
    target_user="alice (uid 1000)",
    target_login="alice",
    target_dumpable=True,
    target_more_caps=False,
    descendant=False,
)
ROOT = replace(ALICE, uid=0, user="root (uid 0)", cap_sys_ptrace=True)
BOB_TARGET = {"target_uids": (1001,) * 3, "target_user": "bob (uid 1001)", "target_login": "bob"}


# -- the advice, fact by fact -------------------------------------------------------------


@pytest.mark.parametrize(
    "facts, says",
    [
        pytest.param(
            replace(ALICE, **BOB_TARGET),
            [f"pid {PID} runs as bob (uid 1001) and flamekit as alice (uid 1000)",
             "run flamekit as that user (sudo -u bob) or as root"],
            id="another-user",
        ),
        pytest.param(
            replace(ALICE, target_uids=(0, 0, 0), target_user="root (uid 0)"),
            ["runs as root (uid 0) and flamekit as alice (uid 1000): run flamekit as root"],
            id="root's-process",
        ),
        pytest.param(
            replace(ROOT, cap_sys_ptrace=False, **BOB_TARGET),
            ["without CAP_SYS_PTRACE", "docker run --cap-add SYS_PTRACE",
             'securityContext: capabilities: add: ["SYS_PTRACE"]'],
            id="root-without-the-capability",
        ),
        pytest.param(
            replace(ALICE, ptrace_scope=1),
            ["kernel.yama.ptrace_scope is 1", "flamekit record -- COMMAND",
             "sysctl kernel.yama.ptrace_scope=0", "as root"],
            id="yama-1",
        ),
        pytest.param(
            replace(ALICE, ptrace_scope=2),
            ["kernel.yama.ptrace_scope is 2", "run flamekit as root",
             "sysctl kernel.yama.ptrace_scope=0"],
            id="yama-2",
        ),
        pytest.param(
            replace(ROOT, ptrace_scope=3),
            ["kernel.yama.ptrace_scope is 3", "root included", "restarts"],
            id="yama-3",
        ),
        pytest.param(
            replace(ALICE, ptrace_scope=1, **BOB_TARGET),
            ["runs as bob (uid 1001)", "; kernel.yama.ptrace_scope is 1"],
            id="another-user-and-yama-1",
        ),
        pytest.param(
            replace(ALICE, target_dumpable=False),
            [f"pid {PID} is not dumpable", "PR_SET_DUMPABLE", "run flamekit as root"],
            id="not-dumpable",
        ),
        pytest.param(
            replace(ALICE, target_more_caps=True),
            [f"pid {PID} holds capabilities flamekit does not", "run flamekit as root"],
            id="more-capabilities",
        ),
        pytest.param(
            replace(ROOT, user_namespace=True),
            ["user namespace", "run flamekit in the target's container, or on the host"],
            id="user-namespace",
        ),
        pytest.param(
            replace(ALICE, cap_sys_ptrace=None),
            ["the target's user or as root", "kernel.yama.ptrace_scope", "CAP_SYS_PTRACE",
             "--cap-add SYS_PTRACE", "securityContext"],
            id="unknown",
        ),
        pytest.param(ROOT, ["AppArmor, SELinux", "seccomp"], id="nothing-explains-it"),
    ],
)  # fmt: skip
def test_the_advice_names_the_cause_and_its_fix(facts: AccessFacts, says: list[str]) -> None:
    text = advice(PID, facts)
    for words in says:
        assert words in text, text
    assert "\n" not in text


def test_yama_only_counts_where_it_refuses() -> None:
    """Scope 1 lets a process trace its descendants (a launched target): not a cause."""
    assert "yama" not in advice(PID, replace(ALICE, ptrace_scope=1, descendant=True))
    assert "yama" not in advice(PID, replace(ALICE, ptrace_scope=1, cap_sys_ptrace=True))
    assert "yama" not in advice(PID, replace(ROOT, cap_sys_ptrace=False, ptrace_scope=2))


names = st.text(st.characters(blacklist_categories=["Cc", "Zl", "Zp"]), max_size=20)
facts = st.builds(
    AccessFacts,
    uid=st.integers(0, 70000),
    user=names,
    cap_sys_ptrace=st.none() | st.booleans(),
    user_namespace=st.booleans(),
    ptrace_scope=st.none() | st.integers(-1, 4),
    target_uids=st.lists(st.integers(0, 70000), max_size=4).map(tuple),
    target_user=names,
    target_login=names,
    target_dumpable=st.none() | st.booleans(),
    target_more_caps=st.none() | st.booleans(),
    descendant=st.booleans(),
)


@given(facts)
def test_any_facts_give_one_line_of_advice(f: AccessFacts) -> None:
    text = advice(PID, f)
    assert text and "\n" not in text


# -- /proc status, parsed -----------------------------------------------------------------


@given(
    st.dictionaries(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
        st.text(st.characters(blacklist_categories=["Cc", "Zl", "Zp"]), max_size=30),
        max_size=8,
    )
)
def test_status_fields_read_back(fields: dict[str, str]) -> None:
    text = "".join(f"{k}:\t{v}\n" for k, v in fields.items())
    assert parse_status(text) == {k: v.strip() for k, v in fields.items()}


@given(st.lists(st.integers(0, 1 << 31), max_size=6))
def test_id_fields_read_back(ids: list[int]) -> None:
    assert ints("\t".join(map(str, ids))) == tuple(ids)
    assert ints(" ".join(map(str, ids)) + " x") == ()  # garbled: nothing, not half
    assert ints(None) == ()


def test_the_facts_here() -> None:
    """gather() on this test's own child: root with CAP_SYS_PTRACE, no Yama, its parent."""
    proc = subprocess.Popen(SLEEPER, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        f = access.gather(proc.pid)
    finally:
        proc.kill()
        proc.communicate()
    assert f.uid == 0 and f.cap_sys_ptrace is True and f.target_uids == (0, 0, 0)
    assert f.descendant and not f.user_namespace and f.target_more_caps is False
    assert f.ptrace_scope is None  # this kernel has no Yama: see the module docstring


# -- the real conditions ------------------------------------------------------------------


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[int]:
    """A Python process started as ``request.param`` (a prefix, e.g. a setpriv)."""
    proc = subprocess.Popen([*request.param[0], *request.param[1]], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def flamekit_as(prefix: list[str], *args: str) -> str:
    """The one error line of flamekit run under ``prefix``."""
    r = subprocess.run(
        [*prefix, sys.executable, "-m", "flamekit", *args],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=60,
    )
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flamekit: error: "), r.stderr
    return lines[0]


def seize_as(prefix: list[str], pid: int) -> str:
    """What the Pauser's seize says when run under ``prefix``."""
    code = (
        "import sys\nfrom flamekit.record.proc.pause import Pauser\n"
        "from flamekit.errors import TargetError\n"
        "try: Pauser(int(sys.argv[1]))\nexcept TargetError as e: print(e)\n"
    )
    r = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(pid)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("target", [(NOBODY, SLEEPER)], indirect=True)
def test_root_without_cap_sys_ptrace(target: int) -> None:
    """A container's root: the capability, with docker's and Kubernetes' way to add it;
    from dump, record (memory) and the pause (ptrace seize) alike."""
    lines = [
        flamekit_as(NO_PTRACE_CAP, "dump", "-p", str(target)),
        flamekit_as(NO_PTRACE_CAP, "record", "-o", "/dev/null", "-p", str(target)),
        seize_as(NO_PTRACE_CAP, target),
    ]
    for line in lines:
        assert "flamekit runs as root but without CAP_SYS_PTRACE" in line, line
        assert "docker run --cap-add SYS_PTRACE" in line, line
        assert 'securityContext: capabilities: add: ["SYS_PTRACE"]' in line, line
    assert lines[2].startswith(f"permission denied to trace process {target}: ")


@pytest.mark.parametrize("target", [(NOBODY, SLEEPER)], indirect=True)
def test_another_user(target: int) -> None:
    line = flamekit_as(DAEMON, "dump", "-p", str(target))
    assert line.endswith(
        f"pid {target} runs as nobody (uid 65534) and flamekit as daemon (uid 1): run "
        "flamekit as that user (sudo -u nobody) or as root"
    ), line
    assert seize_as(DAEMON, target).endswith("(sudo -u nobody) or as root")


@pytest.mark.parametrize("target", [(NOBODY, NOT_DUMPABLE)], indirect=True)
def test_a_target_that_is_not_dumpable(target: int) -> None:
    """Same user, but the target cleared its dumpable flag: only root may read it."""
    line = flamekit_as(NOBODY, "dump", "-p", str(target))
    assert f"pid {target} is not dumpable" in line and line.endswith("run flamekit as root")


MORE_CAPS = [*NOBODY, "--inh-caps=+sys_nice", "--ambient-caps=+sys_nice"]


@pytest.mark.parametrize("target", [(MORE_CAPS, SLEEPER)], indirect=True)
def test_a_target_with_capabilities_flamekit_lacks(target: int) -> None:
    line = flamekit_as(NOBODY, "dump", "-p", str(target))
    assert f"pid {target} holds capabilities flamekit does not" in line, line


@pytest.mark.parametrize("target", [([], SLEEPER)], indirect=True)
def test_flamekit_in_a_user_namespace(target: int) -> None:
    """A rootless container's root has every capability, in its own namespace only."""
    line = flamekit_as(["unshare", "--user", "--map-root-user"], "dump", "-p", str(target))
    assert "flamekit runs in a user namespace" in line, line
