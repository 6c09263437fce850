"""/v1/threads/{thread_id}/runs/{run_id}/steps: list and retrieve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Listing, Pool, Project
from api.errors import not_found
from assistants.db import objects
from assistants.file_search import shape_step

router = APIRouter(prefix="/v1/threads/{thread_id}/runs/{run_id}/steps", tags=["run steps"])
Include = Annotated[list[str] | None, Query(alias="include[]")]


@router.get("")
async def list_steps(
    thread_id: str, run_id: str, project: Project, pool: Pool, page: Listing, include: Include = None
) -> dict[str, Any]:
    if await objects.get(pool, "runs", project, run_id, thread_id=thread_id) is None:
        raise not_found("run", run_id)
    listing = (await objects.list_page(pool, "run_steps", project, **page.kwargs(), run_id=run_id)).envelope()  # type: ignore[arg-type]
    listing["data"] = [shape_step(s, include) for s in listing["data"]]
    return listing


@router.get("/{step_id}")
async def retrieve_step(
    thread_id: str, run_id: str, step_id: str, project: Project, pool: Pool, include: Include = None
) -> dict[str, Any]:
    obj = await objects.get(pool, "run_steps", project, step_id, run_id=run_id, thread_id=thread_id)
    if obj is None:
        raise not_found("run step", step_id)
    return shape_step(obj, include)
