"""Tool calls as Responses / Conversations items: `function_call` and `function_call_output`
(with ids derived from the call's, so an item reads the same wherever it is listed), and the
built-in tools' `file_search_call` and `code_interpreter_call`, from a run step's tool call."""

from __future__ import annotations

from typing import Any

from assistants import client_tools


def output_item_id(call_id: str) -> str:
    """A function_call_output item's id, derived from its call's id: the same item reads the same
    in a conversation's items and in the input_items of the response that gave it."""
    return "fco_" + call_id.removeprefix("call_")


def function_call_item(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "type": "function_call",
        "id": "fc_" + call["id"].removeprefix("call_"),
        "call_id": call["id"],
        "name": fn.get("name"),
        "arguments": fn.get("arguments") or "",
        "status": "completed",
    }


def function_output_item(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "function_call_output",
        "id": output_item_id(call_id),
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }


def call_item(
    call: dict[str, Any], done: bool, tools: dict[str, client_tools.ClientTool] | None = None
) -> dict[str, Any] | None:
    """A run step's tool call as an output item; a function call in the form of the client tool
    it stands for (`tools`: a request's catalog, assistants/client_tools.py)."""
    status = "completed" if done else "in_progress"
    kind = call.get("type")
    if kind == "function" and tools:
        fn = call.get("function") or {}
        return client_tools.call_item(call["id"], fn.get("name") or "", fn.get("arguments") or "", tools)
    if kind == "function":
        return function_call_item(call)
    if kind == "file_search":
        results = (call.get("file_search") or {}).get("results")
        return {
            "type": "file_search_call",
            "id": call["id"],
            "status": status,
            "queries": [],
            "results": [
                {
                    "file_id": r.get("file_id"),
                    "filename": r.get("file_name"),
                    "score": r.get("score"),
                    "text": "".join(c.get("text", "") for c in r.get("content") or []) or None,
                    "attributes": {},
                }
                for r in results or []
            ]
            or None,
        }
    if kind == "code_interpreter":
        ci = call.get("code_interpreter") or {}
        outputs = [
            {"type": "logs", "logs": o.get("logs", "")}
            if o.get("type") == "logs"
            else {"type": "image", "url": f"/v1/files/{(o.get('image') or {}).get('file_id')}/content"}
            for o in ci.get("outputs") or []
        ]
        return {
            "type": "code_interpreter_call",
            "id": call["id"],
            "status": status,
            "code": ci.get("input") or "",
            "outputs": outputs,
            "container_id": "",
        }
    return None
