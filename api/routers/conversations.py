"""/v1/conversations: a conversation IS a thread (one row, one id), so a thread built with the
Assistants API reads and continues as a conversation, and the other way round. Items are the
thread's messages and its runs' function calls with their outputs (api/conversation_items.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.conversation_items import conversation_object, message_item, page_of, thread_items
from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import bad_request, not_found
from api.response_input import parse_input
from api.thread_rows import create_thread_rows, delete_thread_rows, refuse_if_active_run, require_thread
from assistants.db import objects
from assistants.ids import new_id
from assistants.objects import message_object
from assistants.schemas import MessageCreate, ThreadCreate
from assistants.schemas_responses import ConversationCreate, ConversationUpdate, ItemsCreate

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def item_messages(items: list[dict[str, Any]], param: str) -> list[MessageCreate]:
    """Conversation items as thread messages: only user and assistant messages map onto a thread."""
    parsed = parse_input(items, param)
    if len(parsed.messages) != len(parsed.entries) or parsed.system:
        raise bad_request(
            "Only user and assistant message items can be added to a conversation.", param, "invalid_value"
        )
    return parsed.messages


@router.post("")
async def create_conversation(
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
    body: ConversationCreate | None = None,
) -> dict[str, Any]:
    body = body or ConversationCreate()
    messages = item_messages(body.items or [], "items")
    thread = await create_thread_rows(
        pool, project, ThreadCreate(messages=messages, metadata=body.metadata), temporal, settings, "conv"
    )
    return conversation_object(thread)


@router.get("/{conversation_id}")
async def retrieve_conversation(conversation_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    return conversation_object(await require_thread(pool, project, conversation_id, "conversation"))


@router.post("/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, project: Project, pool: Pool
) -> dict[str, Any]:
    thread = await objects.patch(pool, "threads", project, conversation_id, {"metadata": body.metadata or {}})
    if thread is None:
        raise not_found("conversation", conversation_id)
    return conversation_object(thread)


@router.delete("/{conversation_id}")
async def delete_conversation(
    conversation_id: str, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    await require_thread(pool, project, conversation_id, "conversation")
    await delete_thread_rows(conversation_id, project, pool, temporal, settings)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


@router.get("/{conversation_id}/items")
async def list_items(conversation_id: str, project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    await require_thread(pool, project, conversation_id, "conversation")
    return page_of(await thread_items(pool, conversation_id), page)


@router.post("/{conversation_id}/items")
async def create_items(
    conversation_id: str, body: ItemsCreate, project: Project, pool: Pool
) -> dict[str, Any]:
    await require_thread(pool, project, conversation_id, "conversation")
    messages = item_messages(body.items, "items")
    await refuse_if_active_run(pool, conversation_id)
    data = []
    for m in messages:
        msg = message_object(new_id("msg"), conversation_id, m)
        await objects.insert(pool, "messages", project, msg, thread_id=conversation_id)
        data.append(message_item(msg))
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }


@router.get("/{conversation_id}/items/{item_id}")
async def retrieve_item(conversation_id: str, item_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    await require_thread(pool, project, conversation_id, "conversation")
    for item in await thread_items(pool, conversation_id):
        if item["id"] == item_id:
            return item
    raise not_found("item", item_id)


@router.delete("/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    thread = await require_thread(pool, project, conversation_id, "conversation")
    if not await objects.delete(pool, "messages", project, item_id, thread_id=conversation_id):
        raise not_found("item", item_id)
    return conversation_object(thread)
