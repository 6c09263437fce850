"""One LISTEN connection per API process, waking the streams of the run id named in each
`run_events` NOTIFY (sent by every append to the log), and the status waiters of `retrieve run`
(api/run_wait.py) on each `run_status` NOTIFY (an append that changes the run's status). A lost
notification only delays a waiter: each also re-reads on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection

from assistants.db.runlog import NOTIFY_CHANNEL, STATUS_CHANNEL

log = logging.getLogger(__name__)


class RunEventHub:
    """One LISTEN connection per process, waking the streams of each NOTIFYed run id."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._subs: dict[tuple[str, str], set[asyncio.Event]] = {}  # (channel, run id) -> waiters
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, run_id: str, channel: str = NOTIFY_CHANNEL) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="run-events-listener")
        wake = asyncio.Event()
        self._subs.setdefault((channel, run_id), set()).add(wake)
        return wake

    def unsubscribe(self, run_id: str, wake: asyncio.Event, channel: str = NOTIFY_CHANNEL) -> None:
        subs = self._subs.get((channel, run_id))
        if subs is not None:
            subs.discard(wake)
            if not subs:
                del self._subs[(channel, run_id)]

    def _wake_all(self) -> None:
        for subs in self._subs.values():
            for wake in subs:
                wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await AsyncConnection.connect(self.database_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await conn.execute(f"LISTEN {STATUS_CHANNEL}")
                    self.listening.set()
                    self._wake_all()  # anything appended while we were not listening
                    async for note in conn.notifies():
                        for wake in self._subs.get((note.channel, note.payload), ()):
                            wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; streams poll meanwhile
                log.warning("run event listener lost its connection (%s); reconnecting", exc)
            self.listening.clear()
            self._wake_all()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def get_hub(request: Request) -> RunEventHub:
    hub = getattr(request.app.state, "run_event_hub", None)
    if hub is None:
        hub = RunEventHub(request.app.state.settings.database_url)
        request.app.state.run_event_hub = hub
    return hub


Hub = Annotated[RunEventHub, Depends(get_hub)]
