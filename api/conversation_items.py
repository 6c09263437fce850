"""Thread messages as Conversations API items (`conversation.item` of type `message`): a thread
and a conversation are one row, so either API reads what the other wrote."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from api.deps import ListParams
from api.errors import not_found
from api.tool_call_items import call_item, function_output_item
from assistants.db.pool import Pool as DbPool


def _part(part: dict[str, Any], role: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        text = part["text"]["value"]
        if role == "assistant":
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {"type": "input_text", "text": text}
    if kind == "image_url":
        ref = part.get("image_url") or {}
        return {
            "type": "input_image",
            "image_url": ref.get("url"),
            "file_id": None,
            "detail": ref.get("detail") or "auto",
        }
    if kind == "image_file":
        ref = part.get("image_file") or {}
        return {
            "type": "input_image",
            "image_url": None,
            "file_id": ref.get("file_id"),
            "detail": ref.get("detail") or "auto",
        }
    return {"type": "input_text", "text": ""}


def message_item(msg: dict[str, Any]) -> dict[str, Any]:
    role = msg.get("role") or "user"
    return {
        "type": "message",
        "id": msg["id"],
        "status": msg.get("status") or "completed",
        "role": role,
        "content": [_part(p, role) for p in msg.get("content") or []],
    }


def conversation_object(thread: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": thread["id"],
        "object": "conversation",
        "created_at": thread["created_at"],
        "metadata": thread.get("metadata") or {},
    }


async def thread_items(pool: DbPool, thread_id: str) -> list[dict[str, Any]]:
    """A thread as a conversation's items, oldest first: its messages, the function calls its runs
    made with the outputs given for them (run_tool_results), and their file_search / code_interpreter
    calls, each run's items in its steps' order. Runs are placed among the other messages: a thread takes no message while a run is
    active, so a run's items sit after the messages older than its first output message (a run with
    no output message: after those created no later than the run, to the second)."""
    async with pool.connection() as conn:
        msgs = await (
            await conn.execute(
                "SELECT id, seq, created_at, data FROM messages WHERE thread_id = %s ORDER BY seq",
                (thread_id,),
            )
        ).fetchall()
        runs = await (
            await conn.execute(
                "SELECT id, created_at FROM runs WHERE thread_id = %s ORDER BY seq", (thread_id,)
            )
        ).fetchall()
        steps = await (
            await conn.execute(
                "SELECT run_id, data FROM run_steps WHERE thread_id = %s ORDER BY seq", (thread_id,)
            )
        ).fetchall()
        others = await (
            await conn.execute(
                "SELECT seq, created_at, data FROM thread_items WHERE thread_id = %s ORDER BY seq",
                (thread_id,),
            )
        ).fetchall()
        outputs = await (
            await conn.execute(
                "SELECT call_id, output FROM run_tool_results WHERE thread_id = %s AND type = 'function'",
                (thread_id,),
            )
        ).fetchall()
    by_id = {m["id"]: m for m in msgs}
    given = {o["call_id"]: o["output"] for o in outputs}
    blocks: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
    anchors: dict[str, int] = {}  # run -> seq of its first output message
    owned: set[str] = set()  # messages emitted inside their run's block
    for row in steps:
        block = blocks.get(row["run_id"])
        if block is None:
            continue
        details = row["data"].get("step_details") or {}
        if details.get("type") == "message_creation":
            msg = by_id.get((details.get("message_creation") or {}).get("message_id"))
            if msg is not None and msg["id"] not in owned:
                owned.add(msg["id"])
                anchors.setdefault(row["run_id"], msg["seq"])
                block.append(message_item(msg["data"]))
            continue
        calls = details.get("tool_calls") or []
        done = row["data"].get("status") == "completed"
        block.extend(item for c in calls if (item := call_item(c, done)) is not None)
        block.extend(
            function_output_item(c["id"], given[c["id"]])
            for c in calls
            if c.get("type") == "function" and c["id"] in given
        )
    # Messages outside runs and the thread's other items (replayed history), in their one order.
    rest = sorted(
        [{**m, "view": message_item(m["data"])} for m in msgs if m["id"] not in owned]
        + [{**o, "view": history_item(o["data"])} for o in others],
        key=lambda r: r["seq"],
    )
    items: list[dict[str, Any]] = []
    i = 0
    for run in runs:
        anchor = anchors.get(run["id"])
        while i < len(rest) and (
            rest[i]["seq"] < anchor if anchor is not None else rest[i]["created_at"] <= run["created_at"]
        ):
            items.append(rest[i]["view"])
            i += 1
        items.extend(blocks[run["id"]])
    items.extend(r["view"] for r in rest[i:])
    return items


def history_item(item: dict[str, Any]) -> dict[str, Any]:
    """A thread item (a call, an output, reasoning ...) as the client gave it, with an id."""
    view = dict(item)
    view.setdefault(
        "id", "item_" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:24]
    )
    if item.get("type") != "reasoning":
        view.setdefault("status", "completed")
    return view


def page_of(items: list[dict[str, Any]], page: ListParams) -> dict[str, Any]:
    """One page of an in-memory item list (oldest first), as the list endpoints answer."""
    items = list(reversed(items)) if page.order == "desc" else list(items)
    ids = [i["id"] for i in items]
    for cursor in (page.after, page.before):
        if cursor is not None and cursor not in ids:
            raise not_found("item", cursor, "after" if cursor == page.after else "before")
    if page.before is not None:
        items = items[: ids.index(page.before)][-page.limit :]
        has_more = ids.index(page.before) > len(items)
    else:
        if page.after is not None:
            items = items[ids.index(page.after) + 1 :]
        has_more = len(items) > page.limit
        items = items[: page.limit]
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
