"""One sandbox per thread: kernel state persists across runs, idles out, comes back when gone.

A session is recreated transparently when its sandbox died (limit hit, worker restart, E2B
expiry) or was never on this worker: the new sandbox gets the thread's files again through the
`restore_files` callback, then its kernel state is rebuilt by replaying the thread's earlier
code cells, in order, through the `replay_cells` callback (their outputs are discarded).

Why rebuilt deterministically rather than a per-worker task queue that pins a thread to the
worker holding its kernel: any runs worker can then take any thread's next call, a worker that
dies loses nothing the database does not hold, and scale-out stays Temporal's job (no routing
of our own). The effects of replayed cells stay inside the new sandbox (its variables and its
/mnt/data); nothing is recorded or stored again. The cost: a replayed cell runs again, so a
cell that reads clocks or randomness (or the network, where a sandbox has one) may leave a
different value than it did the first time, and rebuilding a long thread takes as long as its
cells did. A replay that kills the new sandbox (a resource limit) falls back to files only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from activities.sandbox.base import Sandbox, SandboxBusy, SandboxDead, SandboxProvider

log = logging.getLogger(__name__)

T = TypeVar("T")
RestoreFiles = Callable[[], "list[tuple[str, bytes]] | Awaitable[list[tuple[str, bytes]]]"]
ReplayCells = Callable[[], "list[str] | Awaitable[list[str]]"]


async def _resolve(callback: Callable[[], T | Awaitable[T]]) -> T:
    value = callback()
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class _Session:
    sandbox: Sandbox | None = None
    last_used: float = field(default_factory=time.monotonic)
    in_use: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SandboxSessions:
    def __init__(
        self,
        provider: SandboxProvider,
        idle_timeout: float = 3600.0,
        reap_interval: float | None = None,
        max_sessions: int = 32,
    ) -> None:
        self.provider = provider
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.reap_interval = (
            reap_interval if reap_interval is not None else max(0.05, min(60.0, idle_timeout / 4))
        )
        self._sessions: dict[str, _Session] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def get(
        self,
        thread_id: str,
        restore_files: RestoreFiles | None = None,
        replay_cells: ReplayCells | None = None,
    ) -> Sandbox:
        """The thread's live sandbox, created (files restored, cells replayed) when there is none."""
        self._ensure_reaper()
        s = self._sessions.setdefault(thread_id, _Session())
        async with s.lock:
            if s.sandbox is not None and not await s.sandbox.is_alive():
                log.info("sandbox session %s: sandbox %s is gone, recreating", thread_id, s.sandbox.id)
                await s.sandbox.kill()
                s.sandbox = None
            if s.sandbox is None:
                await self._make_room(thread_id)
                s.sandbox = await self._create(thread_id, restore_files, replay_cells)
            s.last_used = time.monotonic()
            return s.sandbox

    @contextlib.asynccontextmanager
    async def use(
        self,
        thread_id: str,
        restore_files: RestoreFiles | None = None,
        replay_cells: ReplayCells | None = None,
    ) -> AsyncIterator[Sandbox]:
        """Like `get`, but the reaper leaves the session alone until the block ends (long executions)."""
        sbx = await self.get(thread_id, restore_files, replay_cells)
        s = self._sessions[thread_id]
        s.in_use += 1
        try:
            yield sbx
        finally:
            s.in_use -= 1
            s.last_used = time.monotonic()

    async def _create(
        self, thread_id: str, restore_files: RestoreFiles | None, replay_cells: ReplayCells | None
    ) -> Sandbox:
        sbx = await self._with_files(restore_files)
        cells = await _resolve(replay_cells) if replay_cells is not None else []
        replayed = 0
        try:
            for code in cells:
                await sbx.run_code(code)  # outputs discarded: they were recorded the first time
                replayed += 1
        except SandboxDead:
            log.warning(
                "sandbox session %s: replaying cell %d of %d killed the sandbox; starting with files only",
                thread_id, replayed + 1, len(cells),
            )  # fmt: skip
            await sbx.kill()
            return await self._with_files(restore_files)
        except BaseException:
            await sbx.kill()
            raise
        if cells:
            log.info("sandbox session %s: replayed %d earlier cells", thread_id, len(cells))
        return sbx

    async def _with_files(self, restore_files: RestoreFiles | None) -> Sandbox:
        sbx = await self.provider.create()
        try:
            if restore_files is not None:
                for name, data in await _resolve(restore_files):
                    await sbx.write_file(name, data)
        except BaseException:
            await sbx.kill()
            raise
        return sbx

    async def _make_room(self, thread_id: str) -> None:
        """Below `max_sessions` live sandboxes, evicting the least recently used idle ones; raise
        SandboxBusy when every one is in use (the activity retries later)."""
        while True:
            live = [(t, x) for t, x in self._sessions.items() if x.sandbox is not None and t != thread_id]
            if len(live) < self.max_sessions:
                return
            idle = [(x.last_used, t) for t, x in live if x.in_use == 0 and not x.lock.locked()]
            if not idle:
                raise SandboxBusy(f"all {self.max_sessions} sandboxes of this worker are in use")
            _, victim = min(idle)
            log.info("sandbox session %s: evicted (least recently used of %d)", victim, len(live))
            await self.close(victim)

    async def close(self, thread_id: str) -> None:
        s = self._sessions.pop(thread_id, None)
        if s is not None and s.sandbox is not None:
            async with s.lock:
                await s.sandbox.kill()

    async def reap(self) -> list[str]:
        """Close sessions idle longer than the timeout; returns their thread ids."""
        now = time.monotonic()
        idle = [
            t
            for t, s in self._sessions.items()
            if s.in_use == 0 and not s.lock.locked() and now - s.last_used > self.idle_timeout
        ]
        for thread_id in idle:
            log.info("sandbox session %s: idle for over %.0f s, closing", thread_id, self.idle_timeout)
            await self.close(thread_id)
        return idle

    def open_count(self) -> int:
        """Live sandboxes this worker holds now. Safe to call from another thread (a scrape):
        the values are copied in one step under the GIL."""
        return sum(1 for s in list(self._sessions.values()) if s.sandbox is not None)

    def __contains__(self, thread_id: str) -> bool:
        s = self._sessions.get(thread_id)
        return s is not None and s.sandbox is not None

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever(), name="sandbox-reaper")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                await self.reap()
            except Exception:  # keep reaping; one failed kill must not leak every later session
                log.exception("sandbox reaper failed")

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for thread_id in list(self._sessions):
            await self.close(thread_id)
        await self.provider.aclose()
