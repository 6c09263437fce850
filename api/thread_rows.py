"""Threads (conversations too) as rows: creating one with its first messages, deleting one with
its runs cancelled, looking one up, refusing new messages while a run is active. The threads,
messages, runs, conversations and responses routers all use these."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from temporalio.client import Client

from api.errors import bad_request, not_found
from api.run_settle import cancel_active_run
from assistants.db import objects
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import ACTIVE_RUN_SQL, ACTIVE_RUN_STATUSES, message_object, thread_object
from assistants.schemas import ThreadCreate
from assistants.settings import Settings


async def create_thread_rows(
    pool: DbPool,
    project: str,
    body: ThreadCreate | None,
    temporal: Client | None = None,
    settings: Settings | None = None,
    id_prefix: str = "thread",
) -> dict[str, Any]:
    """Insert a thread and its initial messages in one transaction (then, given `temporal` and
    `settings`, create its `tool_resources.file_search.vector_stores` and attach message files).
    The Conversations API names its threads `conv_...`; either API opens either kind."""
    body = body or ThreadCreate()
    # --- files (issue 5): check attached files before creating anything ---
    from api import vector_store_ops as vs

    attached = vs.file_search_attachments(body.messages or [])
    specs = vs.inline_store_specs(body.tool_resources)
    # Ids from another project (or none) are refused before anything is stored.
    await vs.check_attachments(pool, project, body.messages or [], "messages.attachments")
    await vs.check_tool_resources(pool, project, body.tool_resources)
    # --- end files ---
    thread = thread_object(new_id(id_prefix), body.tool_resources, body.metadata)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO threads (id, project_id, created_at, data) VALUES (%s, %s, %s, %s)",
            (thread["id"], project, thread["created_at"], Jsonb(thread)),
        )
        for m in body.messages or []:
            msg = message_object(new_id("msg"), thread["id"], m)
            await conn.execute(
                "INSERT INTO messages (id, project_id, thread_id, created_at, data) VALUES (%s, %s, %s, %s, %s)",
                (msg["id"], project, thread["id"], msg["created_at"], Jsonb(msg)),
            )
    # --- files (issue 5) ---
    if temporal is not None and settings is not None:
        for spec in specs:
            store = await vs.create_store_from_spec(pool, temporal, settings, project, spec)
            tool_resources = {**thread["tool_resources"], "file_search": {"vector_store_ids": [store["id"]]}}
            thread = (
                await objects.patch(
                    pool, "threads", project, thread["id"], {"tool_resources": tool_resources}
                )
                or thread
            )
        thread = await vs.attach_files_to_thread(pool, temporal, settings, project, thread, attached)
    # --- end files ---
    return thread


async def delete_thread_rows(
    thread_id: str, project: str, pool: DbPool, temporal: Client, settings: Settings
) -> dict[str, Any]:
    """Delete the thread (a conversation too), cancelling its active runs first."""
    if await objects.get(pool, "threads", project, thread_id) is None:
        raise not_found("thread", thread_id)
    # Cancel its runs first, so no workflow keeps working (and retrying) on a deleted thread.
    async with pool.connection() as conn:
        active = await (
            await conn.execute(
                f"SELECT id FROM runs WHERE thread_id = %s AND project_id = %s AND {ACTIVE_RUN_SQL}",
                (thread_id, project),
            )
        ).fetchall()
    for run in active:
        await cancel_active_run(pool, temporal, settings, project, run["id"])
    if not await objects.delete(pool, "threads", project, thread_id):
        raise not_found("thread", thread_id)
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


async def require_thread(pool: DbPool, project: str, thread_id: str, kind: str = "thread") -> dict[str, Any]:
    """The thread, or a 404 naming it as `kind` (a conversation is a thread)."""
    thread = await objects.get(pool, "threads", project, thread_id)
    if thread is None:
        raise not_found(kind, thread_id)
    return thread


async def refuse_if_active_run(pool: DbPool, thread_id: str) -> None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT id FROM runs WHERE thread_id = %s AND status = ANY(%s)",
                (thread_id, list(ACTIVE_RUN_STATUSES)),
            )
        ).fetchone()
    if row is not None:
        raise bad_request(f"Can't add messages to {thread_id} while a run {row['id']} is active.")
