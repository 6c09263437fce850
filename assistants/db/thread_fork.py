"""Writes a forked thread: the new thread row, then copies of the source thread's messages and
items up to a point, in their order (api/response_fork.py decides when a response forks)."""

from __future__ import annotations

import hashlib
from typing import Any

from psycopg.types.json import Jsonb

from assistants.db import thread_items
from assistants.db.pool import Pool as DbPool


async def insert_fork(
    pool: DbPool, project: str, fork: dict[str, Any], source_id: str, until_seq: int
) -> None:
    """`fork` (a thread object) and copies of `source_id`'s messages and items up to `until_seq`."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO threads (id, project_id, created_at, data) VALUES (%s, %s, %s, %s)",
            (fork["id"], project, fork["created_at"], Jsonb(fork)),
        )
        # Copies get ids derived from the original's and the fork's ('msg_' + 24 hex digits), and
        # are inserted one by one in the original order: messages and items share one sequence.
        rows = await (
            await conn.execute(
                "SELECT 'm' AS kind, seq, id, run_id, created_at, data FROM messages"
                " WHERE thread_id = %(thread)s AND project_id = %(project)s AND seq <= %(until)s"
                " UNION ALL SELECT 'i', seq, id, NULL, created_at, data FROM thread_items"
                " WHERE thread_id = %(thread)s AND project_id = %(project)s AND seq <= %(until)s"
                " ORDER BY seq",
                {"thread": source_id, "project": project, "until": until_seq},
            )
        ).fetchall()
        for r in rows:
            if r["kind"] == "i":
                await thread_items.insert(conn, project, fork["id"], r["created_at"], r["data"])
                continue
            copy_id = "msg_" + hashlib.md5((r["id"] + fork["id"]).encode()).hexdigest()[:24]
            await conn.execute(
                "INSERT INTO messages (id, project_id, thread_id, run_id, created_at, data)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    copy_id,
                    project,
                    fork["id"],
                    r["run_id"],
                    r["created_at"],
                    Jsonb({**r["data"], "id": copy_id, "thread_id": fork["id"]}),
                ),
            )
