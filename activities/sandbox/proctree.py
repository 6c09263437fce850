"""Processes of a local sandbox as the host sees them, and ending the ones a cell left behind.

A timed-out cell can leave processes running (`Popen(...)` and a sleep, a daemon that
double-forked into the sandbox's pid namespace). At the deadline every process of the sandbox
except its core (the bwrap processes and the kernel, noted when the kernel became ready, before
any user code ran) is stopped and then killed: descendants of the outer bwrap, which in a pid
namespace include orphans (they are reparented to the namespace's init), plus the members of the
sandbox's cgroup where it has one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] in (b"Z", b"X"):
            continue  # dead, waiting to be reaped: nothing left to kill
        out.setdefault(int(fields[1]), []).append(int(name))
    return out


def descendants(root: int) -> set[int]:
    """Every live process below `root` (not `root` itself)."""
    children = _children_map()
    out: set[int] = set()
    stack = [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def kill_strays(root: int, core: set[int], members: Callable[[], set[int]] | None = None) -> int:
    """Stop, then kill, every process under `root` or in `members` that is not in `core`; repeat
    until none is left (a process forking meanwhile gets another round). Returns how many."""
    killed: set[int] = set()
    for _ in range(20):
        strays = (descendants(root) | (members() if members else set())) - core - {root}
        if not strays:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in strays:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        killed |= strays
        time.sleep(0.02)
    return len(killed)
