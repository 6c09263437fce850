"""The Responses API's objects, read off the run that executes a response: its status, its steps
(output items), its messages (output text) and its usage. Nothing here writes."""

from __future__ import annotations

from typing import Any

from api.tool_call_items import call_item
from assistants import client_tools
from assistants.db.pool import Pool as DbPool

# run status -> response status. A run waiting for function outputs has finished its part: the
# response is complete and lists the function_call items to answer.
STATUS = {
    "queued": "queued",
    "in_progress": "in_progress",
    "cancelling": "in_progress",
    "requires_action": "completed",
    "completed": "completed",
    "incomplete": "incomplete",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "failed",
}
INCOMPLETE_REASONS = {"max_completion_tokens": "max_output_tokens", "max_prompt_tokens": "max_output_tokens"}


def _text_parts(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "output_text", "text": p["text"]["value"], "annotations": [], "logprobs": []}
        for p in msg.get("content") or []
        if p.get("type") == "text"
    ]


def message_item(msg: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": msg["id"],
        "status": msg.get("status") or "completed",
        "role": "assistant",
        "content": _text_parts(msg),
    }


async def output_items(
    pool: DbPool, run_id: str, skip_steps: list[str], tools: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The run's steps (those not in `skip_steps`) as output items, and the ids of all its steps."""
    async with pool.connection() as conn:
        steps = await (
            await conn.execute("SELECT id, data FROM run_steps WHERE run_id = %s ORDER BY seq", (run_id,))
        ).fetchall()
        msgs = await (
            await conn.execute(
                "SELECT id, data FROM messages WHERE run_id = %s AND data->>'role' = 'assistant'", (run_id,)
            )
        ).fetchall()
    by_id = {m["id"]: m["data"] for m in msgs}
    names = client_tools.catalog(tools)
    items: list[dict[str, Any]] = []
    for row in steps:
        if row["id"] in skip_steps:
            continue
        step = row["data"]
        details = step.get("step_details") or {}
        if details.get("type") == "message_creation":
            msg = by_id.get((details.get("message_creation") or {}).get("message_id"))
            if msg is not None:
                items.append(message_item(msg))
        for call in details.get("tool_calls") or []:
            item = call_item(call, step.get("status") == "completed", names)
            if item is not None:
                items.append(item)
    return items, [r["id"] for r in steps]


def _counts(usage: dict[str, Any] | None) -> tuple[int, int, int, int]:
    """(prompt, completion, cached, reasoning) tokens of a run's usage (assistants/db/run_status.py `run_usage`)."""
    u = usage or {}
    return (
        int(u.get("prompt_tokens") or 0),
        int(u.get("completion_tokens") or 0),
        int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        int((u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def usage_of(run: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any] | None:
    """The response's usage: the run's (set once it ends or waits for function outputs), less
    `base`, what the run had used when this response continued it (its `_usage_base`)."""
    if not run.get("usage"):
        return None
    total, before = _counts(run["usage"]), _counts(base)
    inp, out, cached, reasoning = (max(0, t - b) for t, b in zip(total, before, strict=True))
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def _completed_at(run: dict[str, Any]) -> int | None:
    """When the response completed: its run's end, or for a response that ended in function
    calls, when its run began to wait for their outputs."""
    if run["status"] == "requires_action":
        return run.get("_requires_action_at")
    return run.get("completed_at") if run["status"] == "completed" else None


def _error(run: dict[str, Any]) -> dict[str, Any] | None:
    if run["status"] == "expired":
        return {"code": "server_error", "message": "The response expired before it completed."}
    err = run.get("last_error")
    if run["status"] != "failed" or not err:
        return None
    code = err.get("code") if err.get("code") in ("rate_limit_exceeded", "invalid_prompt") else "server_error"
    return {"code": code, "message": err.get("message") or ""}


def _incomplete(run: dict[str, Any]) -> dict[str, Any] | None:
    if run["status"] != "incomplete":
        return None
    reason = (run.get("incomplete_details") or {}).get("reason")
    return {"reason": INCOMPLETE_REASONS.get(str(reason), reason)}


# What a built-in call item carries only when the request's `include` asks for it, as OpenAI's.
INCLUDE_ONLY = {
    "file_search_call": ("results", "file_search_call.results"),
    "code_interpreter_call": ("outputs", "code_interpreter_call.outputs"),
}


def shown(item: dict[str, Any], include: list[str] | None) -> dict[str, Any]:
    """An output item as a response with this `include` shows it."""
    field = INCLUDE_ONLY.get(item.get("type", ""))
    if field is None or field[1] in (include or []):
        return item
    return {**item, field[0]: None}


async def response_object(pool: DbPool, resp: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The response as the SDK parses it, from its stored request and its run as it now is."""
    if resp.get("_snapshot"):
        return dict(resp["_snapshot"])
    items, _ = await output_items(pool, run["id"], resp.get("_skip_steps") or [], resp.get("tools"))
    status = STATUS.get(run["status"], run["status"])
    out = {k: v for k, v in resp.items() if not k.startswith("_")}
    out.update(
        status=status,
        output=[shown(i, resp.get("_include")) for i in items],
        usage=usage_of(run, resp.get("_usage_base")),
        error=_error(run),
        incomplete_details=_incomplete(run),
        completed_at=_completed_at(run),
    )
    if _prompt_too_long(run):
        # Nothing was generated: the input does not fit the model's context (OpenAI refuses
        # such a request with `context_length_exceeded`; Codex reads that code).
        out.update(
            status="failed",
            incomplete_details=None,
            error={
                "code": "context_length_exceeded",
                "message": "The input does not fit the model's context window, even with its oldest"
                " turns dropped (truncation 'auto'), or truncation is 'disabled'.",
            },
        )
    return out


def _prompt_too_long(run: dict[str, Any]) -> bool:
    """A run of a response ended incomplete for `max_prompt_tokens`: responses set no such limit,
    so only a prompt that could not fit the context ends that way."""
    reason = (run.get("incomplete_details") or {}).get("reason")
    return run["status"] == "incomplete" and reason == "max_prompt_tokens"


def _tool_echo(tool: dict[str, Any]) -> dict[str, Any]:
    """A request's tool as the response shows it: a function tool with every field of the
    official FunctionTool (`description`, `parameters`, `strict` null when not given)."""
    if tool.get("type") != "function":
        return tool
    return {"description": None, "parameters": None, "strict": None, **tool}


def request_fields(body: Any, model: str) -> dict[str, Any]:
    """What a response echoes of its request (the official object's fields)."""
    text = dict(body.text or {})
    text["format"] = text.get("format") or {"type": "text"}
    reasoning = body.reasoning or {}
    return {
        "object": "response",
        "model": model,
        "instructions": body.instructions,
        "tools": [_tool_echo(t) for t in body.tools or []],
        "tool_choice": body.tool_choice or "auto",
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "text": text,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "previous_response_id": body.previous_response_id,
        "conversation": {"id": body.conversation_id} if body.conversation_id else None,
        "store": True if body.store is None else body.store,
        "background": bool(body.background),
        "metadata": body.metadata or {},
        # What the run does: "auto" unless the request said "disabled" (OpenAI's default is
        # "disabled"; here a conversation longer than the context loses its oldest turns).
        "truncation": body.truncation or "auto",
        # The model here produces no reasoning items: `summary` echoes what was asked for.
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default" if body.service_tier in (None, "auto") else body.service_tier,
        "user": body.user,
        "safety_identifier": body.safety_identifier,
        "prompt_cache_key": body.prompt_cache_key,
        "prompt_cache_retention": body.prompt_cache_retention,
        # Sampling settings a response reports although the request cannot set them here (the
        # Open Responses schema requires them): what generation actually used.
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": body.top_logprobs or 0,
    }


def input_item_view(item: dict[str, Any]) -> dict[str, Any]:
    """A stored input item as input_items lists it."""
    if item["type"] != "message":
        return {"status": "completed", **item} if item["type"] != "reasoning" else dict(item)
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    return {**item, "content": content or [], "status": "completed"}
