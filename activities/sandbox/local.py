"""The local backend: an IPython kernel inside bubblewrap, as an unprivileged uid, with no network.

The parts: the isolation policy (`bwrap`), the kernel's lifecycle and one cell's execution
(`kernel`), turning Jupyter output into an `Execution` (`jupyter_output`), and file access from
the host to the sandbox's work dir (`host_files`). This module ties them into a `Sandbox`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from activities.sandbox import cgroup
from activities.sandbox.base import (
    WORK_DIR,
    Execution,
    FileInfo,
    Sandbox,
    SandboxDead,
    SandboxProvider,
    SandboxUnavailable,
    resolve_work_path,
)
from activities.sandbox.bwrap import LocalConfig, check_bwrap
from activities.sandbox.cgroup import SandboxCgroup
from activities.sandbox.host_files import (
    default_work_root,
    mount_quota,
    safe_list,
    safe_open,
    safe_read,
    safe_write,
    sweep_orphans,
    unmount,
)
from activities.sandbox.kernel import Kernel
from activities.sandbox.limits import SandboxLimits

__all__ = [
    "LocalConfig",
    "LocalSandbox",
    "LocalSandboxProvider",
    "check_bwrap",
    "default_work_root",
    "sweep_orphans",
]

log = logging.getLogger(__name__)


class LocalSandboxProvider(SandboxProvider):
    name = "local"

    def __init__(self, cfg: LocalConfig, limits: SandboxLimits) -> None:
        self.cfg = cfg
        self.limits = limits
        self._checked: asyncio.Future[str | None] | None = None

    async def unavailable_reason(self) -> str | None:
        """Checked once per provider: bwrap is probed on first use, not at import."""
        if self._checked is None:
            self._checked = asyncio.ensure_future(check_bwrap(self.cfg))
            await asyncio.to_thread(sweep_orphans, Path(self.cfg.work_root))
            await asyncio.to_thread(cgroup.sweep)
            groups, why = await asyncio.to_thread(cgroup.probe)
            if not groups:
                log.warning("sandbox: no cgroup per sandbox (%s); per-process rlimits only", why)
        reason = await self._checked
        if reason and not self.cfg.unsafe:
            return (
                reason
                + " (or set ASSISTANTS_SANDBOX_UNSAFE=true to run code WITHOUT isolation, or E2B_API_KEY)"
            )
        return None

    async def create(self) -> LocalSandbox:
        reason = await self.unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        isolated = not (self._checked and self._checked.result())
        if not isolated:
            log.warning("sandbox: UNSAFE mode, user code runs without isolation (bubblewrap unusable)")
        sbx = LocalSandbox(self.cfg, self.limits, isolated=isolated)
        try:
            await sbx.start()
        except BaseException:
            await sbx.kill()
            raise
        return sbx


class LocalSandbox(Sandbox):
    def __init__(self, cfg: LocalConfig, limits: SandboxLimits, *, isolated: bool = True) -> None:
        self.cfg = cfg
        self.limits = limits
        self.isolated = isolated
        self.id = "sbx_" + secrets.token_hex(8)
        self._root = Path(cfg.work_root) / self.id  # host: ctl/ (sockets) and data/ (/mnt/data)
        self._data = self._root / "data"
        self._kernel: Kernel | None = None
        self._cgroup: SandboxCgroup | None = None
        self.disk_quota = False  # whether /mnt/data is a size-limited tmpfs (see host_files.mount_quota)
        self._lock = asyncio.Lock()  # one execution at a time, as in a notebook
        self._killed = False

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._make_dirs)
        lim = self.limits
        if self.cfg.cgroup:
            self._cgroup = await asyncio.to_thread(
                SandboxCgroup.create, self.id, lim.memory_bytes, lim.processes, lim.cpus
            )
        await self._start_kernel()

    def _make_dirs(self) -> None:
        Path(self.cfg.work_root).mkdir(parents=True, exist_ok=True)
        os.chmod(self.cfg.work_root, 0o711)  # traversable by the sandbox uid, not listable
        self._root.mkdir(mode=0o711)
        (self._root / "owner.pid").write_text(str(os.getpid()))
        for d in (self._root / "ctl", self._data, self._root / "home"):
            d.mkdir(mode=0o700)
            if os.geteuid() == 0:
                os.chown(d, self.cfg.uid, self.cfg.uid)
        uid = self.cfg.uid if os.geteuid() == 0 else os.geteuid()
        if self.cfg.disk_quota:
            self.disk_quota = mount_quota(self._data, self.limits.disk_bytes, self.limits.disk_files, uid)

    async def _start_kernel(self) -> None:
        self._kernel = await Kernel.start(
            self.cfg, self.limits, self._root, isolated=self.isolated, cgroup=self._cgroup
        )

    async def _stop_kernel(self) -> None:
        kernel, self._kernel = self._kernel, None
        if kernel is not None:
            await kernel.stop()

    async def kill(self) -> None:
        self._killed = True
        await self._stop_kernel()
        if self.disk_quota:  # before the group goes: its pages are charged to the group
            await asyncio.to_thread(unmount, self._data)
            self.disk_quota = False
        group, self._cgroup = self._cgroup, None
        if group is not None:
            await asyncio.to_thread(group.remove)
        # rmtree never follows symlinks, so links the sandbox planted cannot redirect it.
        await asyncio.to_thread(shutil.rmtree, self._root, True)

    async def is_alive(self) -> bool:
        return not self._killed and self._kernel is not None and self._kernel.alive

    # ---- code ------------------------------------------------------------------------------
    async def run_code(self, code: str, timeout: float | None = None) -> Execution:  # noqa: ASYNC109
        async with self._lock:
            if not await self.is_alive():
                raise SandboxDead(f"sandbox {self.id} is not running")
            assert self._kernel is not None
            timeout = self.limits.timeout_seconds if timeout is None else timeout
            execution, timed_out = await self._kernel.execute(code, timeout)
            if timed_out:
                # The kernel ignored the interrupt: start a fresh one; files in /mnt/data stay.
                await self._stop_kernel()
                await self._start_kernel()
            return execution

    # ---- files (host side: see host_files) -------------------------------------------------
    async def write_file(self, path: str, data: bytes) -> str:
        rel = resolve_work_path(path)
        await asyncio.to_thread(
            safe_write, self._data, rel, data, self.cfg.uid if os.geteuid() == 0 else None
        )
        return f"{WORK_DIR}/{rel}"

    async def read_file(self, path: str) -> bytes:
        rel = resolve_work_path(path)
        return await asyncio.to_thread(safe_read, self._data, rel, self.limits.file_size_bytes)

    async def open_file(self, path: str) -> BinaryIO:
        rel = resolve_work_path(path)
        return await asyncio.to_thread(safe_open, self._data, rel)

    async def list_files(self) -> list[FileInfo]:
        return await asyncio.to_thread(safe_list, self._data)
