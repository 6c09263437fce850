"""/v1/threads/{thread_id}/runs and /v1/threads/runs: create (and run), list, retrieve, modify,
cancel, submit_tool_outputs. Each run is a RunWorkflow whose workflow id is the run id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import bad_request, not_found
from api.limits import check_active_runs
from api.run_settle import cancel_active_run
from api.run_start import create_run, start_workflow
from api.run_wait import POLL_AFTER_HEADER, POLL_HELPER_HEADER, wait_for_change
from api.sse import run_stream
from api.sse_cursors import last_seq, record_thread_created, reserve_seq
from api.sse_hub import Hub
from api.thread_rows import create_thread_rows, require_thread
from api.tool_outputs import check_tool_outputs, deliver_tool_outputs
from api.vector_store_ops import attach_files_to_thread, file_search_attachments
from assistants.db import objects
from assistants.file_search import RESULT_CONTENT
from assistants.objects import public
from assistants.schemas import RunCreate, RunUpdate, SubmitToolOutputs, ThreadAndRunCreate, ThreadCreate

router = APIRouter(tags=["runs"])
Include = Annotated[list[str] | None, Query(alias="include[]")]


async def _require_run(pool: Any, project: str, thread_id: str, run_id: str) -> dict[str, Any]:
    run = await objects.get(pool, "runs", project, run_id, thread_id=thread_id)
    if run is None:
        raise not_found("run", run_id)
    return run


@router.post("/v1/threads/{thread_id}/runs")
async def create_thread_run(
    thread_id: str,
    body: RunCreate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
    hub: Hub,
    include: Include = None,
) -> Any:
    thread = await require_thread(pool, project, thread_id)
    unknown = [i for i in include or [] if i != RESULT_CONTENT]
    if unknown:
        raise bad_request(
            f"Invalid include value {unknown[0]!r}: the only supported value is {RESULT_CONTENT!r}.",
            "include",
            "invalid_value",
        )
    run = await create_run(
        pool,
        settings,
        project,
        thread,
        body,
        body.additional_instructions,
        body.additional_messages,
        include=include,
    )
    # Before the workflow starts: file_search attachments join the thread's vector store, as a
    # created message's do, so the run can search them.
    await attach_files_to_thread(
        pool, temporal, settings, project, thread, file_search_attachments(body.additional_messages or [])
    )
    await start_workflow(pool, temporal, settings, project, run)
    if body.stream:
        return run_stream(pool, hub, run["id"], include=include)
    return run


@router.post("/v1/threads/runs")
async def create_thread_and_run(
    body: ThreadAndRunCreate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
    hub: Hub,
) -> Any:
    # Validate the run against the assistant before creating anything.
    thread_body = body.thread or ThreadCreate()
    if body.tool_resources is not None and thread_body.tool_resources is None:
        thread_body = thread_body.model_copy(update={"tool_resources": body.tool_resources})
    if await objects.get(pool, "assistants", project, body.assistant_id) is None:
        raise not_found("assistant", body.assistant_id, "assistant_id")
    await check_active_runs(pool, settings, project)  # before its thread is created
    # A stream starts with `thread.created`, logged under a position taken before the run's events.
    thread_seq = await reserve_seq(pool) if body.stream else None
    thread = await create_thread_rows(pool, project, thread_body, temporal, settings)
    run = await create_run(pool, settings, project, thread, body, None, None)
    if thread_seq is not None:
        await record_thread_created(pool, run["id"], thread_seq, thread)
    await start_workflow(pool, temporal, settings, project, run)
    if thread_seq is not None:
        return run_stream(pool, hub, run["id"], after=thread_seq - 1)
    return run


@router.get("/v1/threads/{thread_id}/runs")
async def list_runs(thread_id: str, project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    await require_thread(pool, project, thread_id)
    listing = (
        await objects.list_page(pool, "runs", project, **page.kwargs(), thread_id=thread_id)
    ).envelope()  # type: ignore[arg-type]
    listing["data"] = [public(r) for r in listing["data"]]
    return listing


@router.get("/v1/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(
    thread_id: str, run_id: str, project: Project, pool: Pool, hub: Hub, request: Request, response: Response
) -> dict[str, Any]:
    if request.headers.get(POLL_HELPER_HEADER) != "true":
        return public(await _require_run(pool, project, thread_id, run_id))
    run = await wait_for_change(hub, run_id, lambda: _require_run(pool, project, thread_id, run_id))
    response.headers[POLL_AFTER_HEADER] = "0"
    return public(run)


@router.post("/v1/threads/{thread_id}/runs/{run_id}")
async def modify_run(
    thread_id: str, run_id: str, body: RunUpdate, project: Project, pool: Pool
) -> dict[str, Any]:
    run = await _require_run(pool, project, thread_id, run_id)
    if "metadata" not in body.model_fields_set:  # nothing sent: nothing changes
        return public(run)
    # Sent metadata replaces the whole map ({} or null clears it), as OpenAI's modify does.
    obj = await objects.patch(pool, "runs", project, run_id, {"metadata": body.metadata or {}})
    assert obj is not None
    return public(obj)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str, run_id: str, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    await _require_run(pool, project, thread_id, run_id)
    run = await cancel_active_run(pool, temporal, settings, project, run_id)
    if run is None:
        current = await _require_run(pool, project, thread_id, run_id)
        raise bad_request(f"Cannot cancel run with status '{current['status']}'.")
    return public(run)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputs,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    hub: Hub,
) -> Any:
    run = await _require_run(pool, project, thread_id, run_id)
    ids = [o.tool_call_id for o in body.tool_outputs]
    check_tool_outputs(run, ids)
    resume_after = await last_seq(pool, run_id) if body.stream else None  # stream what follows the outputs
    outputs = {o.tool_call_id: o.output for o in body.tool_outputs}
    await deliver_tool_outputs(pool, temporal, project, run, ids, outputs)
    if resume_after is not None:
        return run_stream(pool, hub, run_id, after=resume_after, include=run.get("_include"))
    return public(await _require_run(pool, project, thread_id, run_id))
