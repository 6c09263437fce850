"""A response's input as history: stateless clients (the Agents SDK, the AI SDK, Codex with
`store: false`) re-send their whole conversation, calls and outputs included, with no
`previous_response_id`. Here that input is checked against the state the request continues (call
ids must pair up, as OpenAI checks them), `item_reference`s are resolved, and a run still waiting
for the outputs the input now gives is closed: its responses keep showing what they showed, and
the new response carries the conversation on from the input."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from api.errors import bad_request, not_found
from api.response_input import ParsedInput
from api.response_objects import response_object
from api.run_settle import cancel_active_run
from api.run_wait import SETTLED, wait_for_change
from api.sse_hub import RunEventHub
from assistants import client_tools
from assistants.db import objects, thread_items
from assistants.db.pool import Pool as DbPool
from assistants.settings import Settings


def pending_calls(run: dict[str, Any] | None) -> list[dict[str, Any]]:
    if run is None or run.get("status") != "requires_action":
        return []
    return list(run["required_action"]["submit_tool_outputs"]["tool_calls"])


async def resolve_references(
    pool: DbPool, project: str, raw: str | list[dict[str, Any]] | None
) -> str | list[dict[str, Any]] | None:
    """`item_reference` items replaced by the items they name: a message, or an item a thread
    holds (thread_items); 404 naming the reference otherwise."""
    if not isinstance(raw, list) or not any(
        isinstance(i, dict) and i.get("type") == "item_reference" for i in raw
    ):
        return raw
    out = []
    for i, item in enumerate(raw):
        if not (isinstance(item, dict) and item.get("type") == "item_reference"):
            out.append(item)
            continue
        ref = item.get("id")
        if not isinstance(ref, str):
            raise bad_request("An item_reference needs a string `id`.", f"input[{i}].id", "invalid_value")
        msg = await objects.get(pool, "messages", project, ref)
        if msg is not None:
            content = [
                {"type": "input_text" if msg["role"] == "user" else "output_text", "text": p["text"]["value"]}
                for p in msg.get("content") or []
                if p.get("type") == "text"
            ]
            out.append({"type": "message", "role": msg["role"], "content": content})
            continue
        found = await thread_items.find(pool, project, ref)
        if found is None:
            raise not_found("item", ref, f"input[{i}].id")
        out.append(found)
    return out


async def thread_calls(pool: DbPool, thread_id: str) -> set[str]:
    """Call ids a thread already holds: replayed call items, and the function calls its runs made."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT data->>'call_id' AS id FROM thread_items WHERE thread_id = %(t)s"
                " AND data->>'type' = ANY(%(types)s)"
                " UNION SELECT c->>'id' FROM run_steps s,"
                " jsonb_array_elements(s.data->'step_details'->'tool_calls') c"
                " WHERE s.thread_id = %(t)s AND jsonb_typeof(s.data->'step_details'->'tool_calls') = 'array'",
                {"t": thread_id, "types": list(client_tools.CALL_TYPES)},
            )
        ).fetchall()
    return {r["id"] for r in rows if r["id"]}


def check_pairs(parsed: ParsedInput, known: set[str], waiting: dict[str, Any] | None) -> None:
    """Every output answers a call (in the input, or one the continued state made), and every
    call of the input, or of the run waiting on this thread, gets its output."""
    pending = {c["id"] for c in pending_calls(waiting)}
    for call_id, at in parsed.output_at.items():
        if call_id not in parsed.calls and call_id not in known and call_id not in pending:
            raise bad_request(
                f"No tool call found for the output with call_id {call_id!r}.",
                f"input[{at}]",
                "invalid_value",
            )
    for call_id in parsed.unanswered:
        if call_id not in pending:
            raise bad_request(
                f"No tool output found for the call with call_id {call_id!r}.",
                f"input[{parsed.calls[call_id]}]",
                "invalid_value",
            )
    if pending and (parsed.entries or parsed.system):
        missing = sorted(pending - set(parsed.outputs))
        if missing:
            raise bad_request(
                f"No tool output found for function call {missing[0]}: the previous response waits for it.",
                "input",
                "invalid_value",
            )


def continues_run(parsed: ParsedInput, waiting: dict[str, Any] | None) -> bool:
    """The input only answers the waiting run's calls (replaying them at most): the run goes on."""
    pending = {c["id"] for c in pending_calls(waiting)}
    if not pending or not parsed.outputs or set(parsed.outputs) - pending:
        return False
    return all(
        isinstance(e, dict)
        and (
            e.get("type") in client_tools.OUTPUT_TYPES
            or (e.get("type") in client_tools.CALL_TYPES and e.get("call_id") in pending)
        )
        for e in parsed.entries
    )


async def freeze_responses(pool: DbPool, project: str, run: dict[str, Any]) -> None:
    """The responses this run made so far keep showing what they show now."""
    async with pool.connection() as conn:
        earlier = await (
            await conn.execute(
                "SELECT data FROM responses WHERE run_id = %s AND NOT data ? '_snapshot'", (run["id"],)
            )
        ).fetchall()
    for row in earlier:
        snapshot = await response_object(pool, row["data"], run)
        await objects.patch(pool, "responses", project, row["data"]["id"], {"_snapshot": snapshot})


async def close_answered(
    pool: DbPool,
    temporal: Client,
    settings: Settings,
    hub: RunEventHub,
    project: str,
    run: dict[str, Any],
    wait: bool,
) -> None:
    """A waiting run whose calls a new history answered: its responses are frozen as they are,
    and it is cancelled (waited for when its thread takes the next run)."""
    await freeze_responses(pool, project, run)
    await cancel_active_run(pool, temporal, settings, project, run["id"])
    if not wait:
        return
    for _ in range(30):  # the workflow settles a cancel within moments
        now = await wait_for_change(hub, run["id"], lambda: _read(pool, project, run["id"]))
        if now["status"] in SETTLED and now["status"] != "requires_action":
            return
    raise bad_request("The previous response's run did not settle in time; retry the request.")


async def _read(pool: DbPool, project: str, run_id: str) -> dict[str, Any]:
    run = await objects.get(pool, "runs", project, run_id)
    return run or {"status": "cancelled"}


async def waiting_elsewhere(pool: DbPool, project: str, call_ids: list[str]) -> list[dict[str, Any]]:
    """The project's runs waiting on any of these calls (a stateless client answered them)."""
    if not call_ids:
        return []
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT data FROM runs r WHERE project_id = %s AND status = 'requires_action' AND EXISTS"
                " (SELECT 1 FROM unnest(%s::text[]) c(id) WHERE r.data->'required_action'"
                "  ->'submit_tool_outputs'->'tool_calls' @> jsonb_build_array(jsonb_build_object('id', c.id)))",
                (project, call_ids),
            )
        ).fetchall()
    return [r["data"] for r in rows]
