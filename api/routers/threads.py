"""/v1/threads: create (with initial messages), retrieve, modify, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api.deps import Pool, Project
from api.errors import not_found
from assistants.db import objects
from assistants.ids import new_id
from assistants.objects import message_object, thread_object, tool_resources_object
from assistants.schemas import ThreadCreate, ThreadUpdate

router = APIRouter(prefix="/v1/threads", tags=["threads"])


async def create_thread_rows(pool: AsyncConnectionPool, project: str, body: ThreadCreate | None) -> dict[str, Any]:
    """Insert a thread and its initial messages in one transaction."""
    body = body or ThreadCreate()
    thread = thread_object(new_id("thread"), body.tool_resources, body.metadata)
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
    return thread


@router.post("")
async def create_thread(project: Project, pool: Pool, body: ThreadCreate | None = None) -> dict[str, Any]:
    return await create_thread_rows(pool, project, body)


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
        fields["tool_resources"] = tool_resources_object(body.tool_resources)
    obj = await objects.patch(pool, "threads", project, thread_id, fields)
    if obj is None:
        raise not_found("thread", thread_id)
    return obj


@router.delete("/{thread_id}")
async def delete_thread(thread_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    if not await objects.delete(pool, "threads", project, thread_id):
        raise not_found("thread", thread_id)
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}
