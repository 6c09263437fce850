"""/v1/threads/{thread_id}/messages: create, list (with run_id filter), retrieve, modify, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import not_found
from api.thread_rows import refuse_if_active_run, require_thread
from assistants.db import objects
from assistants.ids import new_id
from assistants.objects import message_object
from assistants.schemas import MessageCreate, MessageUpdate

router = APIRouter(prefix="/v1/threads/{thread_id}/messages", tags=["messages"])


@router.post("")
async def create_message(
    thread_id: str,
    body: MessageCreate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
) -> dict[str, Any]:
    thread = await require_thread(pool, project, thread_id)
    await refuse_if_active_run(pool, thread_id)
    # --- files (issue 5): file_search attachments join the thread's vector store ---
    from api.vector_store_ops import attach_files_to_thread, check_attachments, file_search_attachments

    await check_attachments(pool, project, [body])
    await attach_files_to_thread(pool, temporal, settings, project, thread, file_search_attachments([body]))
    # --- end files ---
    msg = message_object(new_id("msg"), thread_id, body)
    return await objects.insert(pool, "messages", project, msg, thread_id=thread_id)


@router.get("")
async def list_messages(
    thread_id: str, project: Project, pool: Pool, page: Listing, run_id: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    await require_thread(pool, project, thread_id)
    where: dict[str, Any] = {"thread_id": thread_id}
    if run_id is not None:
        where["run_id"] = run_id
    return (await objects.list_page(pool, "messages", project, **page.kwargs(), **where)).envelope()  # type: ignore[arg-type]


@router.get("/{message_id}")
async def retrieve_message(thread_id: str, message_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    obj = await objects.get(pool, "messages", project, message_id, thread_id=thread_id)
    if obj is None:
        raise not_found("message", message_id)
    return obj


@router.post("/{message_id}")
async def modify_message(
    thread_id: str, message_id: str, body: MessageUpdate, project: Project, pool: Pool
) -> dict[str, Any]:
    obj = await objects.get(pool, "messages", project, message_id, thread_id=thread_id)
    if obj is None:
        raise not_found("message", message_id)
    if "metadata" not in body.model_fields_set:  # nothing sent: nothing changes
        return obj
    # Sent metadata replaces the whole map ({} or null clears it), as OpenAI's modify does.
    obj = await objects.patch(pool, "messages", project, message_id, {"metadata": body.metadata or {}})
    assert obj is not None
    return obj


@router.delete("/{message_id}")
async def delete_message(thread_id: str, message_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    if not await objects.delete(pool, "messages", project, message_id, thread_id=thread_id):
        raise not_found("message", message_id)
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}
