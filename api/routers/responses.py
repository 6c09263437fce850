"""/v1/responses: the Responses API on the same durable core. A response is executed as a run
(RunWorkflow, same activities, same task queues) on a thread: its `conversation`, else its
`previous_response_id`'s thread, else a new one. Input messages become thread messages;
`function_call_output` items go to the run waiting on them (its submit_tool_outputs update), and
the new response then shows what that run does next. The run is the source of truth: a response
row holds the request, and its status and output are read off the run (api/response_objects.py).

Runs of responses have no assistant (`assistant_id` is ""): the request gives all the options an
assistant would, and activities read an assistant's tool_resources with outer joins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from api.conversation_items import message_item, page_of
from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import APIError, bad_request, not_found
from api.model_check import check_model
from api.response_fork import fork_point, fork_thread
from api.response_history import (
    check_pairs,
    close_answered,
    continues_run,
    freeze_responses,
    pending_calls,
    resolve_references,
    thread_calls,
    waiting_elsewhere,
)
from api.response_input import ParsedInput, parse_input, run_options, vector_store_ids
from api.response_lookup import require_response, require_stores, thread_for
from api.response_objects import input_item_view, output_items, request_fields, response_object
from api.response_stream import response_events
from api.run_settle import cancel_active_run
from api.run_start import create_run_with, start_workflow
from api.run_wait import SETTLED, wait_for_change
from api.sse import stream_response
from api.sse_cursors import last_seq
from api.sse_hub import Hub, RunEventHub
from api.thread_rows import create_thread_rows, delete_thread_rows
from api.tool_call_items import output_item_id
from api.tool_outputs import check_tool_outputs, deliver_tool_outputs
from assistants import client_tools
from assistants.client_tools import call_item
from assistants.db import objects
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import message_object, now
from assistants.schemas_responses import ResponseCreate
from assistants.settings import Settings

router = APIRouter(prefix="/v1/responses", tags=["responses"])
NO_ASSISTANT = ""


async def _run_of(pool: DbPool, project: str, resp: dict[str, Any]) -> dict[str, Any]:
    run = await objects.get(pool, "runs", project, resp["_run_id"])
    if run is None:  # its thread (conversation) was deleted
        raise not_found("response", resp["id"])
    return run


async def _view(pool: DbPool, project: str, resp: dict[str, Any]) -> dict[str, Any]:
    return await response_object(pool, resp, await _run_of(pool, project, resp))


async def _wait_settled(pool: DbPool, hub: RunEventHub, project: str, resp: dict[str, Any]) -> dict[str, Any]:
    """Long-poll the run (api/run_wait.py) until it settles; then the response as it ended."""
    while True:
        run = await wait_for_change(hub, resp["_run_id"], lambda: _run_of(pool, project, resp))
        if run["status"] in SETTLED:
            return await response_object(pool, resp, run)


async def _with_stores(
    pool: DbPool, project: str, thread: dict[str, Any], store_ids: list[str]
) -> dict[str, Any]:
    """file_search's `vector_store_ids` join the thread's tool_resources (where runs search)."""
    await require_stores(pool, project, store_ids)
    resources = thread.get("tool_resources") or {}
    have = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
    merged = list(dict.fromkeys(have + store_ids))
    if merged == have:
        return thread
    fields = {"tool_resources": {**resources, "file_search": {"vector_store_ids": merged}}}
    return await objects.patch(pool, "threads", project, thread["id"], fields) or thread


async def _waiting_run(pool: DbPool, project: str, thread: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run on this thread that waits for function outputs, if any."""
    if thread is None:
        return None
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data FROM runs WHERE thread_id = %s AND project_id = %s AND status = 'requires_action'",
                (thread["id"], project),
            )
        ).fetchone()
    return None if row is None else dict(row["data"])


def _item_with_id(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as input_items lists it: the client's id, or one of ours."""
    if item.get("id"):
        return dict(item)
    if item.get("type") in client_tools.OUTPUT_TYPES and item.get("call_id"):
        return {**item, "id": output_item_id(item["call_id"])}
    return {**item, "id": new_id("msg" if item.get("type") == "message" else "item")}


async def _continue_run(
    pool: DbPool,
    temporal: Any,
    project: str,
    run: dict[str, Any],
    parsed: ParsedInput,
    base: dict[str, Any],
) -> dict[str, Any]:
    """Outputs for the waiting run's calls: hand them to it; the new response shows the rest."""
    ids = list(parsed.outputs)
    check_tool_outputs(run, ids)
    _, seen = await output_items(pool, run["id"], [])
    await freeze_responses(pool, project, run)  # responses already made by this run end here
    items = [_item_with_id(i) for i in parsed.items if i.get("type") in client_tools.OUTPUT_TYPES]
    resp = {
        "_stream_after": await last_seq(pool, run["id"]),  # its stream: what follows the outputs
        **base,
        "_run_id": run["id"],
        "_thread_id": run["thread_id"],
        "_skip_steps": seen,
        "_usage_base": run.get("usage"),
        "_input": items,
    }
    await objects.insert(pool, "responses", project, resp, thread_id=run["thread_id"], run_id=run["id"])
    await deliver_tool_outputs(pool, temporal, project, run, ids, parsed.outputs)
    return resp


async def _start_run(
    pool: DbPool,
    temporal: Any,
    settings: Settings,
    project: str,
    thread: dict[str, Any] | None,
    body: ResponseCreate,
    parsed: ParsedInput,
    model: str,
    base: dict[str, Any],
    carried: list[dict[str, Any]],
) -> dict[str, Any]:
    """A new run on the thread over the input's history; `carried`: call items of a closed run
    whose outputs the input gives, written first so each output follows its call."""
    options = run_options(body, model, parsed.system)
    thread = thread or await create_thread_rows(pool, project, None)
    thread = await _with_stores(pool, project, thread, vector_store_ids(body))
    for entry in parsed.entries:  # the same objects parsed.items lists: one id in both places
        if isinstance(entry, dict) and not entry.get("id"):
            entry["id"] = _item_with_id(entry)["id"]
    msg_ids = [new_id("msg") for _ in parsed.messages]
    messages = iter(zip(msg_ids, parsed.messages, strict=True))
    items = []
    for item in parsed.items:
        if item.get("type") == "message" and item["role"] in ("user", "assistant"):
            msg_id, m = next(messages)
            items.append(message_item(message_object(msg_id, thread["id"], m)))
        elif item.get("type") == "message":  # folded into the run's instructions
            items.append(input_item_view({**item, "id": new_id("msg")}))
        else:
            items.append(input_item_view(_item_with_id(item)))
    defaults = {"model": model, "instructions": "", "tools": [], "response_format": "auto", "metadata": {}}
    run = await create_run_with(
        pool,
        settings,
        project,
        thread,
        options,
        NO_ASSISTANT,
        defaults,
        None,
        parsed.messages,
        message_ids=msg_ids,
        history=[*carried, *parsed.entries],
    )
    extra: dict[str, Any] = {}
    if body.truncation == "disabled":  # read by the generate activity (activities/prompt.py)
        extra["_truncation"] = "disabled"
    if body.max_tool_calls is not None:  # read by the generate activity (activities/prompt.py)
        extra["_max_tool_calls"] = body.max_tool_calls
    if extra:
        await objects.patch(pool, "runs", project, run["id"], extra)
    resp = {
        **base,
        "_run_id": run["id"],
        "_thread_id": thread["id"],
        "_skip_steps": [],
        "_input": items,
        "_items_seq": await _last_item_seq(pool, thread["id"]),
    }
    await objects.insert(pool, "responses", project, resp, thread_id=thread["id"], run_id=run["id"])
    await start_workflow(pool, temporal, settings, project, run)
    return resp


async def _last_item_seq(pool: DbPool, thread_id: str) -> int | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT max(seq) AS seq FROM thread_items WHERE thread_id = %s", (thread_id,))
        ).fetchone()
    return None if row is None or row["seq"] is None else int(row["seq"])


def _stream(
    pool: DbPool,
    hub: RunEventHub,
    project: str,
    resp: dict[str, Any],
    run: dict[str, Any],
    after: int = -1,
    then: Callable[[], Awaitable[None]] | None = None,
) -> StreamingResponse:
    events = response_events(pool, hub, resp, run, lambda: _run_of(pool, project, resp), after)
    return stream_response(events if then is None else _then(events, then))


async def _then(events: AsyncIterator[bytes], then: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield event
    finally:  # the stream ended, or its client went away
        await then()


async def _forget(
    pool: DbPool, temporal: Any, settings: Settings, project: str, resp: dict[str, Any], own_thread: bool
) -> None:
    """store=false: once the response has been answered, nothing of it stays retrievable. The
    response row goes; so does the thread made for it alone (with its run, cancelled if it still
    waits for function outputs). A conversation, or the thread of a stored previous response,
    keeps what it holds (its messages and items), as with store=true."""
    await objects.delete(pool, "responses", project, resp["id"])
    if own_thread:
        try:
            await delete_thread_rows(resp["_thread_id"], project, pool, temporal, settings)
        except APIError:  # already gone
            pass


@router.post("")
async def create_response(
    body: ResponseCreate, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings, hub: Hub
) -> Any:
    prev, thread = await thread_for(pool, project, body.previous_response_id, body.conversation_id)
    model = body.model or (prev["model"] if prev else None)
    if not model:
        raise bad_request("model is required.", "model", "missing_required_parameter")
    check_model(settings, model)
    parsed = parse_input(await resolve_references(pool, project, body.input))
    if not parsed.entries:
        raise bad_request("input must hold at least one item besides system and developer messages.", "input")
    if body.max_output_tokens is not None and body.max_output_tokens < settings.min_completion_tokens:
        raise bad_request(
            f"max_output_tokens must be at least {settings.min_completion_tokens}.", "max_output_tokens"
        )
    if body.store is False and body.background:
        raise bad_request("background=true requires store=true.", "background")
    if body.prompt is not None:  # reusable prompts live in OpenAI's dashboard; none are stored here
        raise not_found("prompt", str(body.prompt.get("id")), "prompt.id")
    base = {
        "id": new_id("resp"),
        "created_at": now(),
        **request_fields(body, model),
        "_include": list(body.include or []),  # what its output items carry (response_objects.shown)
    }
    if prev is not None and thread is not None:
        until = await fork_point(pool, prev)
        if until is not None:  # the previous response's thread moved on: continue a copy
            thread = await fork_thread(pool, project, thread, until)
    waiting = await _waiting_run(pool, project, thread)
    known = await thread_calls(pool, thread["id"]) if thread is not None else set()
    check_pairs(parsed, known, waiting)
    if waiting is not None and continues_run(parsed, waiting):
        resp = await _continue_run(pool, temporal, project, waiting, parsed, base)
    else:
        carried: list[dict[str, Any]] = []
        if waiting is not None:  # answered along with more input: the conversation goes on anew
            names = client_tools.catalog(body.tools)
            carried = [
                call_item(c["id"], c["function"]["name"], c["function"]["arguments"], names)
                for c in pending_calls(waiting)
                if c["id"] not in parsed.calls
            ]
            await close_answered(pool, temporal, settings, hub, project, waiting, wait=True)
        for run in await waiting_elsewhere(pool, project, sorted(set(parsed.outputs) - known)):
            if thread is None or run["thread_id"] != thread["id"]:  # a stateless client answered it
                await close_answered(pool, temporal, settings, hub, project, run, wait=False)
        resp = await _start_run(pool, temporal, settings, project, thread, body, parsed, model, base, carried)
    forget = None
    if body.store is False:
        own_thread = thread is None
        forget = lambda: _forget(pool, temporal, settings, project, resp, own_thread)  # noqa: E731
    if body.stream:
        return _stream(pool, hub, project, resp, await _run_of(pool, project, resp), then=forget)
    if body.background:
        return await _view(pool, project, resp)
    answer = await _wait_settled(pool, hub, project, resp)
    if forget is not None:
        await forget()
    return answer


@router.get("/{response_id}")
async def retrieve_response(
    response_id: str, project: Project, pool: Pool, hub: Hub, stream: bool = False, starting_after: int = -1
) -> Any:
    resp = await require_response(pool, project, response_id)
    run = await _run_of(pool, project, resp)
    if stream:  # replayed from the run's event log, then tailed
        return _stream(pool, hub, project, resp, run, starting_after)
    return await response_object(pool, resp, run)


@router.delete("/{response_id}")
async def delete_response(
    response_id: str, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    resp = await require_response(pool, project, response_id)
    run = await objects.get(pool, "runs", project, resp["_run_id"])
    if run is not None and run["status"] in ("queued", "in_progress") and not resp.get("_snapshot"):
        await cancel_active_run(pool, temporal, settings, project, run["id"])
    await objects.delete(pool, "responses", project, response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/{response_id}/cancel")
async def cancel_response(
    response_id: str, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings, hub: Hub
) -> dict[str, Any]:
    resp = await require_response(pool, project, response_id)
    if not resp.get("background"):
        raise bad_request("Only responses created with background=true can be cancelled.")
    run = await _run_of(pool, project, resp)
    if run["status"] not in ("queued", "in_progress") or resp.get("_snapshot"):
        status = (await response_object(pool, resp, run))["status"]
        raise bad_request(f"Cannot cancel a response with status '{status}'.")
    await cancel_active_run(pool, temporal, settings, project, run["id"])
    # The workflow settles it `cancelled` within moments: answer with that.
    run = await wait_for_change(hub, run["id"], lambda: _run_of(pool, project, resp))
    return await response_object(pool, resp, run)


@router.get("/{response_id}/input_items")
async def list_input_items(response_id: str, project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    resp = await require_response(pool, project, response_id)
    return page_of([input_item_view(i) for i in resp.get("_input") or []], page)
