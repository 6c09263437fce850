"""Server-sent events for runs: replay a run's event log from a cursor, then tail it.

Every event is `id: <run_events.seq>`, `event: <name>`, `data: <json>`; a stream ends after the
first terminal run event (or `thread.run.requires_action`) with `event: done` / `data: [DONE]`.
Deltas never pass through any API process's memory between requests: each stream reads
Postgres, so any replica can serve (or resume) any run's stream.

Tailing: one LISTEN connection per API process (`RunEventHub`) wakes the streams of the run id
named in each `run_events` NOTIFY; every stream also re-queries every `POLL_S` seconds, so a
lost notification (listener reconnecting, Postgres failover) only delays events.

The database away (restarting, failing over, or a pool that cannot hand out a connection in
time on a busy machine) only pauses a stream: every read is idempotent from the stream's cursor,
so a failed one is retried, with keepalives meanwhile. A stream ends with an `error` event only
when the database has been unreachable for `DB_GIVE_UP_S`; the client then resumes from its
last event id.

Modules: `sse_encode` (the wire format), `sse_view` (what one client holds of a retried
generation), `sse_hub` (the LISTEN connection), `sse_cursors` (where a stream starts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from starlette.responses import StreamingResponse

from api.sse_encode import DONE, HEADERS, KEEPALIVE, encode, error_event
from api.sse_hub import RunEventHub
from api.sse_view import ClientView, restore_view
from assistants.db.pool import Pool as DbPool
from assistants.file_search import shape_step

log = logging.getLogger(__name__)

POLL_S = 2.0  # safety-net re-query when no NOTIFY arrives
KEEPALIVE_S = 15.0  # comment line so proxies keep an idle stream open
BATCH = 500  # rows per query while replaying
DB_RETRY_MAX_S = 2.0  # longest pause between reads while the database is away
DB_GIVE_UP_S = 120.0  # unreachable this long: the stream really cannot go on
STOP_EVENTS = frozenset(
    {
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.requires_action",
    }
)
TERMINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled", "expired")


async def _rows_after(pool: DbPool, run_id: str, cursor: int) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, attempt, event, data, discarded FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (run_id, cursor, BATCH),
        )
        return await cur.fetchall()  # type: ignore[return-value]


async def _rows_upto(pool: DbPool, run_id: str, cursor: int) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, attempt, event, data, discarded FROM run_events WHERE run_id = %s AND seq <= %s"
            " AND event LIKE 'thread.%%' AND (event LIKE '%%.delta' OR event LIKE 'thread.run.step.%%') ORDER BY seq",
            (run_id, cursor),
        )
        return await cur.fetchall()  # type: ignore[return-value]


async def _run_ended(pool: DbPool, run_id: str) -> bool:
    async with pool.connection() as conn:
        row: Any = await (await conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,))).fetchone()
    return row is None or row["status"] in TERMINAL_STATUSES


class DatabaseAway(Exception):
    """The database stayed unreachable for `DB_GIVE_UP_S`."""


@dataclass
class Outage:
    """Consecutive failed reads of one stream: how long to pause, and when to give up."""

    run_id: str
    since: float | None = None
    failures: int = 0

    def failed(self, exc: psycopg.OperationalError) -> float:
        """The pause before the next read; raises DatabaseAway once the outage lasts too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("streaming run %s: database unreachable (%s); retrying", self.run_id, exc)
        self.failures += 1
        if now - self.since >= DB_GIVE_UP_S:
            raise DatabaseAway(f"database unreachable for {now - self.since:.0f}s") from exc
        return min(DB_RETRY_MAX_S, 0.1 * 2**self.failures)

    def over(self) -> None:
        if self.since is not None:
            log.info("streaming run %s: database back after %d failed reads", self.run_id, self.failures)
        self.since, self.failures = None, 0


async def run_events(
    pool: DbPool, hub: RunEventHub, run_id: str, after: int = 0, include: list[str] | None = None
) -> AsyncIterator[bytes]:
    """The run's events after seq `after`, encoded, until a stop event; then `done`. Step events
    carry file_search result content only when the run was created with it in `include[]`."""
    wake = hub.subscribe(run_id)
    outage = Outage(run_id)
    try:
        view: ClientView | None = None if after > 0 else ClientView()
        cursor, last_out, check_end = after, time.monotonic(), True
        while True:
            wake.clear()
            try:
                if view is None:
                    view = restore_view(await _rows_upto(pool, run_id, after), after)
                # Status before rows: a run whose final status this read sees has committed its
                # final events with it, so the rows read next include them. (Rows first could
                # miss events committed between the two reads, and end the stream without them.)
                ended = check_end and await _run_ended(pool, run_id)
                rows = await _rows_after(pool, run_id, cursor)
            except psycopg.OperationalError as exc:
                await asyncio.sleep(outage.failed(exc))
                if time.monotonic() - last_out >= KEEPALIVE_S:
                    yield KEEPALIVE
                    last_out = time.monotonic()
                continue
            outage.over()
            for row in rows:
                cursor = row["seq"]
                out = [] if row["discarded"] else view.render(row)
                if not out:
                    continue
                if row["event"].startswith("thread.run.step."):
                    out = [shape_step(data, include) for data in out]
                for data in out[:-1]:  # without an id: resuming before this row sends it again
                    yield encode(row["event"], data)
                yield encode(row["event"], out[-1], row["seq"])
                last_out = time.monotonic()
                if row["event"] in STOP_EVENTS:
                    yield DONE
                    return
            if len(rows) == BATCH:
                continue
            # Nothing after the cursor and the run over: its last event was before the cursor.
            if ended and not rows:
                yield DONE
                return
            try:
                await asyncio.wait_for(wake.wait(), POLL_S)
                check_end = False
            except TimeoutError:
                check_end = True
            if time.monotonic() - last_out >= KEEPALIVE_S:
                yield KEEPALIVE
                last_out = time.monotonic()
    except asyncio.CancelledError:
        raise  # the client went away; the run goes on without it
    except DatabaseAway as exc:
        log.error("streaming run %s: %s; ending the stream", run_id, exc)
        yield error_event(
            "The server cannot reach its database. Resume with Last-Event-ID.", code="database_unavailable"
        )
    except Exception:  # noqa: BLE001 - reported in-band: the response has already started
        log.exception("streaming run %s failed", run_id)
        yield error_event("The server had an error while streaming this run. Resume with Last-Event-ID.")
    finally:
        hub.unsubscribe(run_id, wake)


def stream_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


def run_stream(
    pool: DbPool, hub: RunEventHub, run_id: str, after: int = 0, include: list[str] | None = None
) -> StreamingResponse:
    return stream_response(run_events(pool, hub, run_id, after, include))
