"""Builders of API objects in their official shapes (what the SDK parses).

Rows keep internal bookkeeping next to the object under keys starting with `_` (`_limits`,
`_by_reference`, `_files`, ...); `public` is the one place they are taken off before a client,
a stream or a webhook receiver sees the object.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from assistants.schemas import MessageCreate

ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
# The same predicate as the partial indexes on active runs (runs_one_active_per_thread,
# runs_project_active), written out literally so the planner can use them.
ACTIVE_RUN_SQL = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES) + ")"
TERMINAL_RUN_STATUSES = ("completed", "incomplete", "failed", "cancelled", "expired")


def now() -> int:
    return int(time.time())


def public(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as clients see it: without the internal keys (those starting with `_`)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True, by_alias=True) if model is not None else None


def tool_resources_object(tr: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tr is None:
        return out
    if tr.code_interpreter is not None:
        out["code_interpreter"] = {"file_ids": list(tr.code_interpreter.file_ids)}
    if tr.file_search is not None:
        out["file_search"] = {"vector_store_ids": list(tr.file_search.vector_store_ids)}
    return out


def text_content(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": value, "annotations": []}}]


def message_content(body: MessageCreate) -> list[dict[str, Any]]:
    if isinstance(body.content, str):
        return text_content(body.content)
    parts: list[dict[str, Any]] = []
    for part in body.content:
        if part.type == "text":
            parts.extend(text_content(part.text))
        else:
            parts.append(dump(part))
    return parts


def message_object(
    msg_id: str,
    thread_id: str,
    body: MessageCreate,
    *,
    assistant_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    created = now()
    attachments = [dump(a) for a in body.attachments or []]
    for fid in body.file_ids or []:  # v1 file_ids become attachments searchable by file_search
        attachments.append({"file_id": fid, "tools": [{"type": "file_search"}]})
    return {
        "id": msg_id,
        "object": "thread.message",
        "created_at": created,
        "thread_id": thread_id,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": created,
        "incomplete_at": None,
        "role": body.role,
        "content": message_content(body),
        "assistant_id": assistant_id,
        "run_id": run_id,
        "attachments": attachments,
        "metadata": body.metadata or {},
    }


def thread_object(thread_id: str, tool_resources: Any, metadata: dict[str, str] | None) -> dict[str, Any]:
    return {
        "id": thread_id,
        "object": "thread",
        "created_at": now(),
        "tool_resources": tool_resources_object(tool_resources),
        "metadata": metadata or {},
    }


def tool_choice_value(choice: Any) -> Any:
    """A run's `tool_choice` as stored: a string as given, an object dumped, "auto" when unset."""
    return (choice if isinstance(choice, str) else dump(choice)) or "auto"


def response_format_value(rf: Any) -> Any:
    if rf is None:
        return "auto"
    return rf if isinstance(rf, str) else dump(rf)
