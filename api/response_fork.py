"""Forking on `previous_response_id`: a response continues the conversation as it stood when its
previous response ended, not whatever was added to that thread since. When a later run exists on
the previous response's thread (another response continued it already), the new response gets a
thread of its own holding copies of the messages up to the previous response's last one (one
INSERT ... SELECT in Postgres; the copies keep their order, roles, content and times). When the
previous response is still the latest, its thread is simply continued."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import thread_object


async def fork_point(pool: DbPool, prev: dict[str, Any]) -> int | None:
    """The seq of the previous response's last message when its thread has moved on since (a run
    started after its run), else None: the thread can be continued as it is."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM runs r JOIN runs p ON p.id = %(run)s"
                " WHERE r.thread_id = p.thread_id AND r.seq > p.seq) AS moved,"
                " (SELECT max(seq) FROM messages WHERE thread_id = %(thread)s"
                "   AND (run_id = %(run)s OR id = ANY(%(inputs)s))) AS last",
                {
                    "run": prev["_run_id"],
                    "thread": prev["_thread_id"],
                    "inputs": [
                        i["id"] for i in prev.get("_input") or [] if str(i.get("id", "")).startswith("msg_")
                    ],
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
        # Copies get ids derived from the original's and the fork's: 'msg_' + 24 hex digits.
        await conn.execute(
            """
            INSERT INTO messages (id, project_id, thread_id, run_id, created_at, data)
            SELECT c.id, m.project_id, %(fork)s, m.run_id, m.created_at,
                   m.data || jsonb_build_object('id', c.id, 'thread_id', %(fork)s)
              FROM messages m
              CROSS JOIN LATERAL (SELECT 'msg_' || left(md5(m.id || %(fork)s), 24) AS id) c
             WHERE m.thread_id = %(thread)s AND m.project_id = %(project)s AND m.seq <= %(until)s
             ORDER BY m.seq
            """,
            {"fork": fork["id"], "thread": thread["id"], "project": project, "until": until_seq},
        )
    return fork
