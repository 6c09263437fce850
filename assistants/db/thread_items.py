"""The one writer of `thread_items`: the items of a thread that are not messages (function calls
and outputs, custom / shell / apply_patch calls and outputs, reasoning, built-in calls replayed
as history), in the messages' own order (migration 0013). The client's item is kept whole in
`data`, its own `id` included; the row's id is the server's (clients re-send the same item ids
in every stateless request)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id


async def insert(
    conn: AsyncConnection[Any], project: str, thread_id: str, created_at: int, item: dict[str, Any]
) -> int:
    """Inserts the item after everything the thread holds; its seq."""
    cur = await conn.execute(
        "INSERT INTO thread_items (id, project_id, thread_id, created_at, data) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING seq",
        (new_id("ti"), project, thread_id, created_at, Jsonb(item)),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0] if isinstance(row, tuple) else row["seq"])


async def find(pool: DbPool, project: str, item_id: str) -> dict[str, Any] | None:
    """The newest item of the project the client knows by `item_id` (an `item_reference`)."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data FROM thread_items WHERE project_id = %s AND data->>'id' = %s ORDER BY seq DESC LIMIT 1",
                (project, item_id),
            )
        ).fetchone()
    return None if row is None else dict(row["data"])
