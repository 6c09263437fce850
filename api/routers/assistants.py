"""/v1/assistants: create, list, retrieve, modify, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import not_found
from api.model_check import check_model
from assistants.db import objects
from assistants.ids import new_id
from assistants.objects import dump, now, response_format_value, tool_resources_object
from assistants.schemas import AssistantCreate, AssistantUpdate
from assistants.settings import Settings

router = APIRouter(prefix="/v1/assistants", tags=["assistants"])


def _tools(body: AssistantCreate | AssistantUpdate) -> list[dict[str, Any]]:
    tools = [dump(t) for t in body.tools or []]
    # v1's `retrieval` is file_search under its new name.
    tools = [{"type": "file_search"} if t["type"] == "retrieval" else t for t in tools]
    if body.file_ids and not any(t["type"] == "file_search" for t in tools):
        tools.append({"type": "file_search"})
    return tools


async def _tool_resources(
    body: AssistantCreate | AssistantUpdate, project: str, pool: Any, temporal: Any, settings: Settings
) -> dict[str, Any]:
    """tool_resources as stored: inline `vector_stores` and v1 `file_ids` become real vector stores."""
    from api.vector_store_ops import (
        check_tool_resources,
        create_store,
        create_store_from_spec,
        inline_store_specs,
    )

    await check_tool_resources(pool, project, body.tool_resources)
    resources = tool_resources_object(body.tool_resources)
    store_ids = list(resources.get("file_search", {}).get("vector_store_ids", []))
    for spec in inline_store_specs(body.tool_resources):
        store = await create_store_from_spec(pool, temporal, settings, project, spec)
        store_ids.append(store["id"])
    if body.file_ids:  # v1: files attached to the assistant are searchable through a store
        store = await create_store(
            pool, temporal, settings, project, name="assistant files (v1 file_ids)", file_ids=body.file_ids
        )
        store_ids.append(store["id"])
    if store_ids:
        resources["file_search"] = {"vector_store_ids": store_ids}
    return resources


@router.post("")
async def create_assistant(
    body: AssistantCreate, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    check_model(settings, body.model)
    obj = {
        "id": new_id("asst"),
        "object": "assistant",
        "created_at": now(),
        "name": body.name,
        "description": body.description,
        "model": body.model,
        "instructions": body.instructions,
        "tools": _tools(body),
        "tool_resources": await _tool_resources(body, project, pool, temporal, settings),
        "metadata": body.metadata or {},
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "response_format": response_format_value(body.response_format),
        "reasoning_effort": body.reasoning_effort,
    }
    return await objects.insert(pool, "assistants", project, obj)


@router.get("")
async def list_assistants(project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    return (await objects.list_page(pool, "assistants", project, **page.kwargs())).envelope()  # type: ignore[arg-type]


@router.get("/{assistant_id}")
async def retrieve_assistant(assistant_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    obj = await objects.get(pool, "assistants", project, assistant_id)
    if obj is None:
        raise not_found("assistant", assistant_id)
    return obj


@router.post("/{assistant_id}")
async def modify_assistant(
    assistant_id: str,
    body: AssistantUpdate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
) -> dict[str, Any]:
    if body.model is not None:
        check_model(settings, body.model)
    given = body.model_fields_set
    fields: dict[str, Any] = {
        k: getattr(body, k)
        for k in ("name", "description", "model", "instructions", "temperature", "top_p", "reasoning_effort")
        if k in given
    }
    if "metadata" in given:
        fields["metadata"] = body.metadata or {}
    if "tools" in given or "file_ids" in given:
        fields["tools"] = _tools(body)
    if "tool_resources" in given or "file_ids" in given:
        if await objects.get(pool, "assistants", project, assistant_id) is None:
            raise not_found("assistant", assistant_id)
        fields["tool_resources"] = await _tool_resources(body, project, pool, temporal, settings)
    if "response_format" in given:
        fields["response_format"] = response_format_value(body.response_format)
    obj = await objects.patch(pool, "assistants", project, assistant_id, fields)
    if obj is None:
        raise not_found("assistant", assistant_id)
    return obj


@router.delete("/{assistant_id}")
async def delete_assistant(assistant_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    if not await objects.delete(pool, "assistants", project, assistant_id):
        raise not_found("assistant", assistant_id)
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}
