"""Forking on `previous_response_id`: a response continues the conversation as it stood when its
previous response ended, not whatever was added to that thread since. When a later run exists on
the previous response's thread (another response continued it already), the new response gets a
thread of its own holding copies of the messages and items up to the previous response's last one
(assistants/db/thread_fork.py; the copies keep their order, roles, content and times). When the
previous response is still the latest, its thread is simply continued."""

from __future__ import annotations

from typing import Any

from assistants.db import thread_fork
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
    await thread_fork.insert_fork(pool, project, fork, thread["id"], until_seq)
    return fork
