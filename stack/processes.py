"""Child processes of the supervisor: start in their own session, stop by process group, restart."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie awaiting its reaper counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def become_subreaper() -> None:
    """Adopt the orphans among our descendants, so their exit is reaped here (see `reap_orphans`).

    pg_ctl daemonizes the postmaster and a killed worker leaves its children: orphans go to
    PID 1, and the PID 1 of a container or VM often never reaps, leaving zombies (a zombie
    postmaster still owns ``postmaster.pid`` for ``kill -0``).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        pass


def reap_orphans(managed: Collection[int]) -> list[int]:
    """Reap every exited child of this process except ``managed`` (a Popen reaps its own)."""
    me, reaped = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[-1].split()[:2]
        except (OSError, ValueError):
            continue
        pid = int(stat.parent.name)
        if ppid != me or state not in ("Z", "X") or pid in managed:
            continue
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
        except ChildProcessError:
            continue
    return reaped


class Backoff:
    """Delays between restarts of one part: doubling from ``initial`` up to ``cap``.

    The cap is a few seconds: a part that keeps failing is retried for as long as the stack
    runs, and one that comes back is back soon.
    """

    def __init__(self, initial: float = 0.5, cap: float = 5.0):
        self.initial, self.cap = initial, cap
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def _die_with_parent() -> None:
    # A child in its own session does not get the terminal's Ctrl-C; if the supervisor is
    # SIGKILLed, the kernel still sends the child SIGTERM so nothing is left orphaned.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def spawn(
    argv: Sequence[str], env: dict[str, str], stdout: IO[bytes] | int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (its own process group) that dies with this process."""
    return subprocess.Popen(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, wait, then SIGKILL it."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            log.warning("pid %s did not exit after %s; escalating", proc.pid, sig.name)


def _kill_group_leftovers(pgid: int) -> None:
    """SIGKILL what a dead child left in its process group (e.g. a killed worker's sandboxes)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_leftover(pid_file: Path, markers: Sequence[str], timeout: float = 15.0) -> None:
    """Stop the process a dead supervisor left behind, if ``pid_file`` still names it.

    The command line must contain one of ``markers`` so a recycled pid is never killed.
    """
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if not pid_alive(pid) or not any(m in cmdline for m in markers):
        return
    log.warning("stopping leftover %s (pid %s)", pid_file.stem, pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


class Child:
    """A supervised child: one role, restarted with backoff whenever it dies, for as long as we run."""

    STABLE_AFTER = 30.0  # a child that ran this long resets the backoff

    def __init__(
        self, role: str, argv: Sequence[str], env: dict[str, str], pid_dir: Path, log_path: Path | None = None
    ):
        self.role, self.argv, self.env, self.pid_dir, self.log_path = role, list(argv), env, pid_dir, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._backoff = Backoff()
        self._started_at = 0.0
        self._restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def pid_file(self) -> Path:
        return self.pid_dir / f"{self.role}.pid"

    def start(self) -> None:
        out: IO[bytes] | None = self.log_path.open("ab") if self.log_path else None
        try:
            self.proc = spawn(self.argv, self.env, stdout=out)
        finally:
            if out is not None:
                out.close()  # the child holds its own copy of the descriptor
        self._started_at = time.monotonic()
        self.pid_file.write_text(f"{self.proc.pid}\n")
        log.info("started %s (pid %s)", self.role, self.proc.pid)

    def check(self) -> bool:
        """Restart the child if it died; True when a new process was started."""
        if self.proc is None or self.proc.poll() is None:
            return False
        now = time.monotonic()
        if self._restart_at is None:
            _kill_group_leftovers(self.proc.pid)
            if now - self._started_at > self.STABLE_AFTER:
                self._backoff.reset()
            delay = self._backoff.next()
            log.warning(
                "%s (pid %s) exited with %s; restarting in %.1fs",
                self.role, self.proc.pid, self.proc.returncode, delay,
            )  # fmt: skip
            self._restart_at = now + delay
        if now < self._restart_at:
            return False
        try:
            self.start()
        except OSError as e:  # e.g. out of processes or descriptors: never stops the stack
            delay = self._backoff.next()
            log.error("could not restart %s (%s); retrying in %.1fs", self.role, e, delay)
            self._restart_at = now + delay
            return False
        self._restart_at = None
        self.restarts += 1
        return True

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None:
            stop_group(self.proc, timeout)
            log.info("stopped %s (pid %s, exit %s)", self.role, self.proc.pid, self.proc.returncode)
        self.pid_file.unlink(missing_ok=True)
