"""A tool call in OpenAI's shapes, made in one place so a run step, a run's `required_action` and
the chat messages the model reads all agree."""

from __future__ import annotations

import json
from typing import Any

from assistants.payloads import ToolCall


def tool_call_object(c: ToolCall, *, in_step: bool) -> dict[str, Any]:
    """`c` as a run step's `step_details.tool_calls[]` shows it (`in_step`: by tool type, a function
    with its `output`), else as a function call (`required_action.submit_tool_outputs`, and the
    assistant turns the model reads back, where built-in tools are functions too)."""
    if in_step and c.type == "code_interpreter":
        try:
            code = json.loads(c.arguments or "{}").get("code", "")
        except (ValueError, AttributeError):
            code = c.arguments
        return {"id": c.id, "type": "code_interpreter", "code_interpreter": {"input": code, "outputs": []}}
    if in_step and c.type == "file_search":
        return {
            "id": c.id,
            "type": "file_search",
            "file_search": {"ranking_options": {"ranker": "auto", "score_threshold": 0.0}, "results": []},
        }
    function: dict[str, Any] = {"name": c.name, "arguments": c.arguments}
    if in_step:
        function["output"] = None
    return {"id": c.id, "type": "function", "function": function}
