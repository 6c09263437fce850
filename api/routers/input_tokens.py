"""POST /v1/responses/input_tokens: how many input tokens a response with this request would
start from. The prompt is rendered on an inference worker by the code that renders a response's
first turn (CountInputTokensWorkflow): instructions (with short documents when file_search is on),
the conversation or previous response it continues, the input items, tools and reasoning effort,
and truncated the way a run truncates. The request waits in Postgres while it is counted, so the
workflow's history holds its id, not the input."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.types.json import Jsonb
from temporalio.client import Client

from api import short_workflow
from api.deps import AppSettings, Pool, Project, Temporal
from api.errors import bad_request
from api.model_check import check_model
from api.response_fork import fork_point
from api.response_input import count_items, run_options, vector_store_ids
from api.response_lookup import require_stores, thread_for
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import dump, now, response_format_value, tool_choice_value
from assistants.payloads import CountInputTokensInput
from assistants.schemas_responses import InputTokensCount
from assistants.settings import Settings
from workflows.input_tokens import COUNT_WORKFLOW_TIMEOUT, CountInputTokensWorkflow

router = APIRouter(prefix="/v1/responses", tags=["responses"])
# Rows an API crash left behind (the API deletes each once counted) go after a day.
STALE_AFTER_S = 86_400


async def _count(temporal: Client, settings: Settings, inp: CountInputTokensInput) -> int:
    tokens: int = await short_workflow.execute(
        temporal,
        CountInputTokensWorkflow.run,
        inp,
        id_prefix="count",
        task_queue=settings.runs_task_queue,
        execution_timeout=COUNT_WORKFLOW_TIMEOUT,
        param="input",
        what="Counting the input tokens",
    )
    return tokens


async def _forget(pool: DbPool, request_id: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM input_token_counts WHERE id = %s OR created_at < %s",
            (request_id, now() - STALE_AFTER_S),
        )


@router.post("/input_tokens")
async def count_input_tokens(
    body: InputTokensCount, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    create = body.as_create()
    prev, thread = await thread_for(pool, project, create.previous_response_id, create.conversation_id)
    model = create.model or (prev["model"] if prev else None)
    if not model:
        raise bad_request("model is required.", "model", "missing_required_parameter")
    check_model(settings, model)
    items, system = count_items(create.input)
    options = run_options(create, model, system)
    stores = vector_store_ids(create)
    await require_stores(pool, project, stores)
    until = await fork_point(pool, prev) if prev is not None and thread is not None else None
    request = {
        "model": model,
        "thread_id": thread["id"] if thread else None,
        "until_seq": until,  # a response continuing `prev` would read its thread up to here
        "instructions": options.instructions,
        "tools": [dump(t) for t in options.tools or []],
        # As create_run_with writes them into the run (api/run_start.py).
        "tool_choice": tool_choice_value(options.tool_choice),
        "response_format": response_format_value(options.response_format),
        "reasoning_effort": options.reasoning_effort,
        "truncation": create.truncation or "auto",
        "vector_store_ids": stores,
        "items": items,
    }
    request_id = new_id("count")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO input_token_counts (id, project_id, created_at, data) VALUES (%s, %s, %s, %s)",
            (request_id, project, now(), Jsonb(request)),
        )
    try:
        inp = CountInputTokensInput(project, request_id, settings.inference_task_queue)
        tokens = await _count(temporal, settings, inp)
    finally:
        await _forget(pool, request_id)
    return {"object": "response.input_tokens", "input_tokens": tokens}
