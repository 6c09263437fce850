"""/v1/threads: create (with initial messages), list (an extension), retrieve, modify, delete."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import bad_request, not_found
from api.thread_rows import create_thread_rows, delete_thread_rows
from assistants.db import objects
from assistants.objects import tool_resources_object
from assistants.schemas import ThreadCreate, ThreadUpdate

router = APIRouter(prefix="/v1/threads", tags=["threads"])


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
    return await delete_thread_rows(thread_id, project, pool, temporal, settings)
