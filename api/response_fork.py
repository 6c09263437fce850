"""Forking on `previous_response_id`: a response continues the conversation as it stood when its
previous response ended, not whatever was added to that thread since. When a later run exists on
the previous response's thread (another response continued it already), the new response gets a
thread of its own holding copies of the messages up to the previous response's last one (one
INSERT ... SELECT in Postgres; the copies keep their order, roles, content and times). When the
previous response is still the latest, its thread is simply continued."""

from __future__ import annotations

import hashlib
from typing import Any

from psycopg.types.json import Jsonb

from assistants.db import thread_items
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import thread_object


async def fork_point(pool: DbPool, prev: dict[str, Any]) -> int | None:
    """The seq of the previous response's last message or input item when its thread has moved on since (a run
    started after its run), else None: the thread can be continued as it is."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM runs r JOIN runs p ON p.id = %(run)s"
                " WHERE r.thread_id = p.thread_id AND r.seq > p.seq) AS moved,"
                " GREATEST((SELECT max(seq) FROM messages WHERE thread_id = %(thread)s"
                "   AND (run_id = %(run)s OR id = ANY(%(inputs)s))), %(items)s::bigint) AS last",
                {
                    "run": prev["_run_id"],
                    "thread": prev["_thread_id"],
                    "inputs": [
                        i["id"] for i in prev.get("_input") or [] if str(i.get("id", "")).startswith("msg_")
                    ],
                    # The last of its input items that are not messages (thread_items).
                    "items": prev.get("_items_seq"),
                },
            )
        ).fetchone()
    if row is None or not row["moved"]:
        return None
    return int(row["last"] or 0)


async def fork_thread(pool: DbPool, project: str, thread: dict[str, Any], until_seq: int) -> dict[str, Any]:
    """A new thread (same tool_resources) holding copies of `thread`'s messages up to `until_seq`."""
    fork = {
        **thread_object(new_id("thread"), None, None),
        "tool_resources": thread.get("tool_resources") or {},
    }
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
                {"thread": thread["id"], "project": project, "until": until_seq},
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
    return fork
