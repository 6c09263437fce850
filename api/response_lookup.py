"""Looking up what a Responses request names: a stored response, file_search vector stores, and
the thread (conversation) a request continues, from `previous_response_id` or `conversation`."""

from __future__ import annotations

from typing import Any

from api.errors import bad_request, not_found
from assistants.db import objects
from assistants.db.pool import Pool as DbPool


async def require_response(
    pool: DbPool, project: str, response_id: str, param: str | None = None
) -> dict[str, Any]:
    resp = await objects.get(pool, "responses", project, response_id)
    if resp is None:
        raise not_found("response", response_id, param)
    return resp


async def require_stores(pool: DbPool, project: str, store_ids: list[str]) -> None:
    """404 (param `tools`) for the first file_search vector store that is not the project's."""
    for sid in store_ids:
        if await objects.get(pool, "vector_stores", project, sid) is None:
            raise not_found("vector store", sid, "tools")


async def thread_for(
    pool: DbPool, project: str, previous_response_id: str | None, conversation_id: str | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the previous response, the thread to continue), either None when not given."""
    prev = None
    if previous_response_id:
        prev = await require_response(pool, project, previous_response_id, "previous_response_id")
    if prev is not None and conversation_id:
        raise bad_request("previous_response_id and conversation cannot both be given.", "conversation")
    thread_id = conversation_id or (prev["_thread_id"] if prev else None)
    if thread_id is None:
        return prev, None
    thread = await objects.get(pool, "threads", project, thread_id)
    if thread is None:
        raise not_found(
            "conversation", thread_id, "conversation" if conversation_id else "previous_response_id"
        )
    return prev, thread
