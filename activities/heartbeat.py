"""Heartbeats on a clock for activities whose work blocks in threads or child processes: a dead
worker is noticed within the heartbeat timeout, however long one step of the work takes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(every_s: float, details: Mapping[str, Any] | None = None) -> AsyncIterator[None]:
    """Heartbeat every `every_s` seconds while the block runs; `details` (read at each beat, so
    the caller may update it) go with each heartbeat."""

    async def beat() -> None:
        while True:
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(dict(details))
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
