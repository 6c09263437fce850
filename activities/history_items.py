"""A thread's non-message items (thread_items) as what the model reads: a replayed call is a tool
call the assistant made, in the model's own tool-call format (the chat template renders it); its
output is a tool message. Built-in calls replayed as history read as calls of the function the
model knows them by, with their results. Reasoning items and the rest the model has no form for
(approvals, listings, compaction marks) are not shown to it."""

from __future__ import annotations

import json
from typing import Any

from assistants import client_tools
from assistants.payloads import ChatMessage


def _call(call_id: str, name: str, arguments: Any) -> ChatMessage:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
    return ChatMessage(role="assistant", content="", tool_calls=[call])


def _builtin(item: dict[str, Any]) -> list[ChatMessage]:
    """A built-in tool's call item, replayed: the call and its result, when it has one."""
    kind, call_id = item["type"], str(item.get("id") or item.get("call_id") or "")
    if kind == "file_search_call":
        queries = item.get("queries") or []
        texts = [str(r.get("text") or "") for r in item.get("results") or [] if isinstance(r, dict)]
        return [
            _call(call_id, "file_search", {"query": queries[0] if queries else ""}),
            ChatMessage(role="tool", content="\n\n".join(texts), tool_call_id=call_id),
        ]
    if kind == "code_interpreter_call":
        logs = [str(o.get("logs") or "") for o in item.get("outputs") or [] if isinstance(o, dict)]
        return [
            _call(call_id, "python", {"code": item.get("code") or ""}),
            ChatMessage(role="tool", content="\n".join(logs), tool_call_id=call_id),
        ]
    if kind == "mcp_call":
        name = f"{item.get('server_label')}{client_tools.NAMESPACE_SEP}{item.get('name')}"
        result = item.get("output") if item.get("error") is None else f"error: {item.get('error')}"
        return [
            _call(call_id, name, item.get("arguments") or "{}"),
            ChatMessage(role="tool", content=str(result or ""), tool_call_id=call_id),
        ]
    if kind == "web_search_call":
        action = item.get("action") or {}
        return [
            _call(call_id, "web_search", {"query": action.get("query") or ""}),
            ChatMessage(role="tool", content="(search results not kept)", tool_call_id=call_id),
        ]
    return []


def item_messages(item: dict[str, Any], output_chars: int) -> list[ChatMessage]:
    kind = item.get("type")
    if kind in client_tools.CALL_TYPES:
        call = client_tools.as_model_call(item)
        return [ChatMessage(role="assistant", content="", tool_calls=[call])]
    if kind in client_tools.OUTPUT_TYPES:
        text = client_tools.output_text(item)
        if len(text) > output_chars:
            text = text[:output_chars] + "\n[... output truncated]"
        return [ChatMessage(role="tool", content=text, tool_call_id=str(client_tools.call_id_of(item)))]
    return _builtin(item)


def merged(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Adjacent tool calls the assistant made together become one assistant turn, as the model
    emits parallel calls."""
    out: list[ChatMessage] = []
    for m in messages:
        prev = out[-1] if out else None
        if (
            prev is not None
            and m.role == "assistant"
            and m.tool_calls
            and not m.content
            and prev.role == "assistant"
            and prev.tool_calls
        ):
            prev.tool_calls = [*prev.tool_calls, *m.tool_calls]
            continue
        out.append(m)
    return out
