"""/v1/threads: create (with initial messages), list (an extension), retrieve, modify, delete."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from psycopg.types.json import Jsonb
from temporalio.client import Client

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import bad_request, not_found
from api.run_settle import cancel_active_run
from assistants.db import objects
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import ACTIVE_RUN_SQL, message_object, thread_object, tool_resources_object
from assistants.schemas import ThreadCreate, ThreadUpdate
from assistants.settings import Settings

router = APIRouter(prefix="/v1/threads", tags=["threads"])


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


@router.post("")
async def create_thread(
    project: Project, pool: Pool, temporal: Temporal, settings: AppSettings, body: ThreadCreate | None = None
) -> dict[str, Any]:
    return await create_thread_rows(pool, project, body, temporal, settings)


_METADATA_PARAM = re.compile(r"^metadata\[(.+)\]$")


def metadata_filter(request: Request) -> dict[str, str]:
    """`metadata[key]=value` query parameters (as many as metadata holds), as one filter."""
    pairs: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        match = _METADATA_PARAM.match(name)
        if match is None:
            continue
        key = match.group(1)
        if key in pairs and pairs[key] != value:
            raise bad_request(f"metadata[{key}] is given twice with different values.", name, "invalid_value")
        pairs[key] = value
    if len(pairs) > 16:
        raise bad_request("At most 16 metadata[key] filters may be given.", "metadata", "invalid_value")
    return pairs


@router.get("")
async def list_threads(request: Request, project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    """An extension: OpenAI has no way to list threads. Newest first by default, paged like every
    other list; `metadata[key]=value` keeps the threads whose metadata holds every given pair."""
    where = metadata_filter(request)
    return (await objects.list_page(pool, "threads", project, **page.kwargs(), metadata=where)).envelope()


@router.get("/{thread_id}")
async def retrieve_thread(thread_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    obj = await objects.get(pool, "threads", project, thread_id)
    if obj is None:
        raise not_found("thread", thread_id)
    return obj


@router.post("/{thread_id}")
async def modify_thread(thread_id: str, body: ThreadUpdate, project: Project, pool: Pool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "metadata" in body.model_fields_set:
        fields["metadata"] = body.metadata or {}
    if "tool_resources" in body.model_fields_set:
        from api.vector_store_ops import check_tool_resources

        if await objects.get(pool, "threads", project, thread_id) is None:
            raise not_found("thread", thread_id)
        await check_tool_resources(pool, project, body.tool_resources)
        fields["tool_resources"] = tool_resources_object(body.tool_resources)
    obj = await objects.patch(pool, "threads", project, thread_id, fields)
    if obj is None:
        raise not_found("thread", thread_id)
    return obj


@router.delete("/{thread_id}")
async def delete_thread(
    thread_id: str, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
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
