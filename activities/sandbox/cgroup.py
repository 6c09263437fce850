"""One control group per local sandbox: memory, process count and CPU bounded for the sandbox as a
whole, not per process.

rlimits alone bound each process (a cell could start 60 processes of 4 GiB each, and every
sandbox shares one uid's process count). A sandbox's kernel joins its own cgroup before bwrap
starts, so everything it ever runs is counted together and killed together:

- cgroup v2 (a writable cgroup2 mount with memory, pids and cpu delegated): `memory.max`,
  `memory.swap.max = 0`, `pids.max`, `cpu.max`, and `cgroup.kill` to end it.
- cgroup v1 (writable memory, pids and cpu hierarchies, as on this project's CI machine):
  `memory.limit_in_bytes` (+ `memsw`), `pids.max`, `cpu.cfs_quota_us`.
- Neither (no write access, e.g. an unprivileged container): `probe()` says why and the sandbox
  runs with per-process rlimits only; the worker logs why at its first sandbox.

Sandbox groups live under `<the worker's own group>/assistants-sandbox/<sandbox id>` in each
hierarchy. A tmpfs a sandbox writes to (its /tmp, and its /mnt/data where mounted) is charged to
its memory, so `memory.max` bounds what it holds in RAM and in those files together.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

PARENT = "assistants-sandbox"
_V1_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    parent: Path  # where sandbox groups are created (exists after probe)


def _mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, fstype, opts, *_ = line.split()
            if fstype in ("cgroup", "cgroup2"):
                out.append((fstype, mnt.replace("\\040", " "), set(opts.split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """controller name (or "" for v2) -> this process's group path."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def _make_parent(path: Path) -> None:
    path.mkdir(exist_ok=True)


def _try_v2() -> tuple[list[Hierarchy] | None, str]:
    mounts = [m for m in _mounts() if m[0] == "cgroup2"]
    if not mounts:
        return None, "no cgroup2 mount"
    mnt = Path(mounts[0][1])
    own = mnt / _own_paths().get("", "/").lstrip("/")
    available = set((own / "cgroup.controllers").read_text().split()) if own.exists() else set()
    want = {"memory", "pids", "cpu"}
    if not want <= available:
        return (
            None,
            f"cgroup2 at {mnt} delegates {sorted(available) or 'no controllers'}, not memory+pids+cpu",
        )
    parent = own / PARENT
    try:
        _make_parent(parent)
        # Controllers must be enabled in each ancestor's subtree_control. A group that holds
        # processes itself cannot (the "no internal processes" rule): that is an EBUSY here.
        for d in (own, parent):
            (d / "cgroup.subtree_control").write_text(" ".join("+" + c for c in sorted(want)))
    except OSError as e:
        return None, f"cannot delegate memory+pids+cpu under {own}: {e.strerror or e}"
    return [Hierarchy(2, parent)], ""


def _try_v1() -> tuple[list[Hierarchy] | None, str]:
    own = _own_paths()
    found: dict[str, Path] = {}
    for fstype, mnt, opts in _mounts():
        for c in _V1_CONTROLLERS:
            if fstype == "cgroup" and c in opts and c not in found:
                found[c] = Path(mnt) / own.get(c, "/").lstrip("/")
    missing = [c for c in _V1_CONTROLLERS if c not in found]
    if missing:
        return None, f"no cgroup v1 hierarchy for {', '.join(missing)}"
    out = []
    for c in _V1_CONTROLLERS:
        parent = found[c] / PARENT
        try:
            _make_parent(parent)
        except OSError as e:
            return None, f"cannot create {parent}: {e.strerror or e}"
        out.append(Hierarchy(1, parent))
    return out, ""


@cache
def probe() -> tuple[tuple[Hierarchy, ...], str]:
    """The hierarchies sandbox groups go in (empty when none can), and why not when empty."""
    if not Path("/proc/self/cgroup").exists():
        return (), "no cgroups on this system"
    reasons = []
    for attempt in (_try_v2, _try_v1):
        try:
            found, why = attempt()
        except OSError as e:
            found, why = None, str(e)
        if found:
            return tuple(found), ""
        reasons.append(why)
    return (), "; ".join(reasons)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class SandboxCgroup:
    """The group(s) of one sandbox. `procs_files` are what its first process writes its pid to."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @classmethod
    def create(cls, name: str, memory_bytes: int, pids: int, cpus: float) -> SandboxCgroup | None:
        """A new group with these limits, or None where the host allows none (see `probe`)."""
        hierarchies, _ = probe()
        if not hierarchies:
            return None
        version = hierarchies[0].version
        dirs = [h.parent / name for h in hierarchies]
        group = cls([], version)
        try:
            for d in dirs:
                d.mkdir()
                group.dirs.append(d)
            quota = max(1000, int(cpus * CPU_PERIOD_US))
            if version == 2:
                (d,) = dirs
                _write(d / "memory.max", str(memory_bytes))
                with contextlib.suppress(FileNotFoundError):
                    _write(d / "memory.swap.max", "0")
                _write(d / "pids.max", str(pids))
                _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                mem, pid, cpu = dirs
                _write(mem / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):  # absent without swap accounting
                    _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
                _write(pid / "pids.max", str(pids))
                _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(cpu / "cpu.cfs_quota_us", str(quota))
        except OSError:
            group.remove()
            raise
        return group

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def chown(self, uid: int) -> None:
        """Let a process running as `uid` move itself in (a non-root worker with a delegated group)."""
        for f in self.procs_files:
            os.chown(f, uid, uid)

    def pids(self) -> set[int]:
        out: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                out |= {int(p) for p in Path(f).read_text().split()}
        return out

    def oom_kills(self) -> int:
        """How many processes of this group the kernel's OOM killer has ended for its memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.dirs[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the group, until none is left (a fork race gets another round)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for p in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left and delete the group; a group still draining is retried briefly."""
        self.kill()
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        log.warning("sandbox cgroup %s not removed: %s", d, e)
                        break
                    time.sleep(0.05)


def sweep(min_age: float = 300.0) -> None:
    """Remove empty sandbox groups left by a worker that died (their processes died with bwrap).
    Groups younger than `min_age` seconds are left alone: another worker may be starting one."""
    hierarchies, _ = probe()
    for h in hierarchies:
        for d in h.parent.glob("sbx_*"):
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > min_age and not (d / "cgroup.procs").read_text().strip():
                    d.rmdir()
