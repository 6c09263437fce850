"""Creating a run: resolve it against its assistant, insert it (the database refuses a second
active run on a thread), then start its RunWorkflow."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import APIError, bad_request, not_found
from api.limits import reserve_active_run
from api.model_check import check_model
from api.run_settle import fail_unstarted_run, orchestration_error
from api.vector_store_ops import check_attachments, refuse_expired_stores
from assistants import metrics
from assistants.db import thread_items
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_events
from assistants.ids import new_id
from assistants.objects import dump, message_object, now, public, response_format_value, tool_choice_value
from assistants.payloads import RunInput
from assistants.schemas import MessageCreate, RunOptions
from assistants.settings import Settings
from workflows.run import RunWorkflow

ASSISTANT_ID = SearchAttributeKey.for_keyword("AssistantId")
THREAD_ID = SearchAttributeKey.for_keyword("ThreadId")
PROJECT_ID = SearchAttributeKey.for_keyword("ProjectId")


def _check_tool_choice(tool_choice: Any, tools: list[dict[str, Any]]) -> None:
    if tool_choice is None or isinstance(tool_choice, str):
        if tool_choice == "required" and not tools:
            raise bad_request("tool_choice 'required' needs at least one tool.", "tool_choice")
        return
    if tool_choice.type == "function":
        names = {t["function"]["name"] for t in tools if t["type"] == "function"}
        if tool_choice.function.name not in names:
            raise bad_request(
                f"tool_choice names function '{tool_choice.function.name}', which is not among the run's tools.",
                "tool_choice",
            )
    elif not any(t["type"] == tool_choice.type for t in tools):
        raise bad_request(f"tool_choice '{tool_choice.type}' is not among the run's tools.", "tool_choice")


def _expires_seconds(settings: Settings, assistant: dict[str, Any]) -> int:
    """Deployment default, overridable per assistant with metadata `run_expires_seconds`."""
    raw = (assistant.get("metadata") or {}).get("run_expires_seconds")
    try:
        value = int(raw) if raw is not None else settings.run_expires_seconds
    except ValueError:
        value = settings.run_expires_seconds
    return max(1, min(value, settings.max_run_expires_seconds))


def _store_ids(*owners: dict[str, Any]) -> list[str]:
    """The vector stores the assistant's and the thread's `tool_resources.file_search` name."""
    return [
        sid
        for o in owners
        for sid in (((o.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or [])
    ]


async def create_run(
    pool: DbPool,
    settings: Settings,
    project: str,
    thread: dict[str, Any],
    body: RunOptions,
    additional_instructions: str | None,
    additional_messages: list[MessageCreate] | None,
    include: list[str] | None = None,
) -> dict[str, Any]:
    assistant_id: str = body.assistant_id  # type: ignore[attr-defined]
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data FROM assistants WHERE id = %s AND project_id = %s", (assistant_id, project)
            )
        ).fetchone()
    if row is None:
        raise not_found("assistant", assistant_id, "assistant_id")
    return await create_run_with(
        pool,
        settings,
        project,
        thread,
        body,
        assistant_id,
        row["data"],
        additional_instructions,
        additional_messages,
        include,
    )


async def create_run_with(
    pool: DbPool,
    settings: Settings,
    project: str,
    thread: dict[str, Any],
    body: RunOptions,
    assistant_id: str,
    assistant: dict[str, Any],
    additional_instructions: str | None,
    additional_messages: list[MessageCreate] | None,
    include: list[str] | None = None,
    message_ids: list[str] | None = None,
    history: list[MessageCreate | dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Create a run whose defaults come from `assistant` (an assistant's data, or for a Responses
    API response, which has no assistant, the defaults it gives: `assistant_id` is then "").
    `history` (a response's input) replaces `additional_messages`: its messages and its other
    items (thread_items) are written in its order, before the run."""
    await check_attachments(pool, project, additional_messages or [], "additional_messages.attachments")
    model = body.model or assistant["model"]
    check_model(settings, model)
    tools = [dump(t) for t in body.tools] if body.tools is not None else assistant.get("tools", [])
    tools = [{"type": "file_search"} if t["type"] == "retrieval" else t for t in tools]
    _check_tool_choice(body.tool_choice, tools)
    if body.max_completion_tokens is not None and body.max_completion_tokens < settings.min_completion_tokens:
        raise bad_request(
            f"max_completion_tokens must be at least {settings.min_completion_tokens}.",
            "max_completion_tokens",
        )
    if any(t["type"] == "file_search" for t in tools):
        await refuse_expired_stores(pool, project, _store_ids(assistant, thread))
    instructions = (
        body.instructions if body.instructions is not None else (assistant.get("instructions") or "")
    )
    if additional_instructions:
        instructions = (
            f"{instructions}\n\n{additional_instructions}" if instructions else additional_instructions
        )
    created = now()
    expires = _expires_seconds(settings, assistant)
    run = {
        "id": new_id("run"),
        "object": "thread.run",
        "created_at": created,
        "thread_id": thread["id"],
        "assistant_id": assistant_id,
        "status": "queued",
        "required_action": None,
        "last_error": None,
        "expires_at": created + expires,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": model,
        "instructions": instructions,
        "tools": tools,
        "metadata": body.metadata or {},
        "usage": None,
        "temperature": body.temperature
        if body.temperature is not None
        else assistant.get("temperature", 1.0),
        "top_p": body.top_p if body.top_p is not None else assistant.get("top_p", 1.0),
        "max_prompt_tokens": body.max_prompt_tokens,
        "max_completion_tokens": body.max_completion_tokens,
        "truncation_strategy": dump(body.truncation_strategy) or {"type": "auto", "last_messages": None},
        "response_format": response_format_value(body.response_format)
        if body.response_format is not None
        else assistant.get("response_format", "auto"),
        "tool_choice": tool_choice_value(body.tool_choice),
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "reasoning_effort": body.reasoning_effort
        if body.reasoning_effort is not None
        else assistant.get("reasoning_effort"),
        "_limits": {"expires_seconds": expires},
        "_include": list(include or []),  # what its streams carry (api/sse.py)
    }
    try:
        async with pool.connection() as conn, conn.transaction():
            await reserve_active_run(conn, settings, project)  # 429 past the project's quota
            ids = iter(message_ids or [])
            for m in history if history is not None else additional_messages or []:
                if isinstance(m, dict):
                    await thread_items.insert(conn, project, thread["id"], created, m)
                    continue
                msg = message_object(next(ids, None) or new_id("msg"), thread["id"], m)
                await conn.execute(
                    "INSERT INTO messages (id, project_id, thread_id, created_at, data) VALUES (%s, %s, %s, %s, %s)",
                    (msg["id"], project, thread["id"], msg["created_at"], Jsonb(msg)),
                )
            await conn.execute(
                "INSERT INTO runs (id, project_id, thread_id, assistant_id, status, created_at, data)"
                " VALUES (%s, %s, %s, %s, 'queued', %s, %s)",
                (run["id"], project, thread["id"], assistant_id, created, Jsonb(run)),
            )
            await append_events(conn, run["id"], [("thread.run.created", run), ("thread.run.queued", run)])
    except psycopg.errors.UniqueViolation:
        raise bad_request(f"Thread {thread['id']} already has an active run.") from None
    metrics.RUNS_STARTED.labels(model).inc()
    return public(run)


async def start_workflow(
    pool: DbPool, temporal: Client, settings: Settings, project: str, run: dict[str, Any]
) -> None:
    try:
        await temporal.start_workflow(
            RunWorkflow.run,
            RunInput(run_id=run["id"], thread_id=run["thread_id"], project_id=project),
            id=run["id"],
            task_queue=settings.runs_task_queue,
            memo={"assistant_id": run["assistant_id"], "thread_id": run["thread_id"], "project_id": project},
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(ASSISTANT_ID, run["assistant_id"]),
                    SearchAttributePair(THREAD_ID, run["thread_id"]),
                    SearchAttributePair(PROJECT_ID, project),
                ]
            )
            if settings.temporal_search_attributes
            else TypedSearchAttributes.empty,
        )
    except WorkflowAlreadyStartedError:
        return  # started by an earlier attempt of this very call
    except RPCError as exc:
        # Nothing will ever run it: fail it now so the thread is not locked (the reconciler
        # settles it instead if this process dies first).
        await fail_unstarted_run(pool, temporal, settings, project, run["id"], exc.message)
        raise orchestration_error("The run could not be started", exc) from exc
    except Exception as exc:
        await fail_unstarted_run(pool, temporal, settings, project, run["id"], str(exc))
        raise APIError(500, "The run could not be started.", type="server_error") from exc
