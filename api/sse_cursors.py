"""Where the streaming variants of create / submit start reading a run's event log, and the
`thread.created` event that create-thread-and-run logs under a position taken in advance."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import NOTIFY_CHANNEL


async def last_seq(pool: DbPool, run_id: str) -> int:
    """The run's newest event: a stream that starts after it shows only what happens next."""
    async with pool.connection() as conn:
        row: Any = await (
            await conn.execute(
                "SELECT coalesce(max(seq), 0) AS seq FROM run_events WHERE run_id = %s", (run_id,)
            )
        ).fetchone()
    return int(row["seq"]) if row else 0


async def reserve_seq(pool: DbPool) -> int:
    """A log position taken before a thread is created, so `thread.created` sorts before the run's
    own events (`thread.run.created`) and resumes like any other event."""
    async with pool.connection() as conn:
        row: Any = await (
            await conn.execute("SELECT nextval(pg_get_serial_sequence('run_events', 'seq')) AS seq")
        ).fetchone()
    assert row is not None
    return int(row["seq"])


async def record_thread_created(pool: DbPool, run_id: str, seq: int, thread: dict[str, Any]) -> None:
    """Log `thread.created` at the reserved `seq`, as `append_events` appends: under the run's
    advisory lock until commit, then NOTIFY, so streams of the run wake for it."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (run_id,))
        await conn.execute(
            "INSERT INTO run_events (seq, run_id, event, data) VALUES (%s, %s, 'thread.created', %s)",
            (seq, run_id, Jsonb(thread)),
        )
        await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, run_id))
