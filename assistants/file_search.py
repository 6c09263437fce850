"""Pure helpers for the file_search tool in runs: its run-step shape and the text the model sees.

The RunWorkflow calls RetrievalActivities.file_search, then builds the tool_calls step with
`file_search_step_details` and feeds `file_search_tool_output` to the model as the tool's output.
"""

from __future__ import annotations

import re
from typing import Any

from assistants.payloads import FileSearchOutput

DEFAULT_RANKING = {"ranker": "default_2024_08_21", "score_threshold": 0.0}
# The one `include[]` value of runs and run steps: file_search results carry their text.
RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def shape_step(step: dict[str, Any], include: list[str] | None) -> dict[str, Any]:
    """A step object (or a `thread.run.step.delta`) as a client sees it: file_search result
    `content` only when asked for with `include[]`, as OpenAI does. Returns a copy when it cuts."""
    if RESULT_CONTENT in (include or []):
        return step
    details = step.get("step_details")
    delta = step.get("delta")
    if not isinstance(details, dict) and isinstance(delta, dict):
        details = delta.get("step_details")
    if not isinstance(details, dict):
        return step
    calls = details.get("tool_calls")
    if not calls or not any(c.get("type") == "file_search" for c in calls):
        return step
    shaped_calls = []
    for call in calls:
        fs = call.get("file_search")
        if call.get("type") == "file_search" and isinstance(fs, dict) and fs.get("results"):
            results = [{k: v for k, v in r.items() if k != "content"} for r in fs["results"]]
            call = {**call, "file_search": {**fs, "results": results}}
        shaped_calls.append(call)
    shaped_details = {**details, "tool_calls": shaped_calls}
    if isinstance(step.get("step_details"), dict):
        return {**step, "step_details": shaped_details}
    return {**step, "delta": {**step["delta"], "step_details": shaped_details}}


def ranking_options(tool: dict[str, Any] | None) -> dict[str, Any]:
    """The effective ranking_options of a `{"type": "file_search", "file_search": {...}}` tool."""
    given = ((tool or {}).get("file_search") or {}).get("ranking_options") or {}
    ranker = given.get("ranker") or "auto"
    return {
        "ranker": DEFAULT_RANKING["ranker"] if ranker == "auto" else ranker,
        "score_threshold": float(given.get("score_threshold") or 0.0),
    }


def file_search_step_details(
    call_id: str, output: FileSearchOutput, ranking: dict[str, Any], include_content: bool = True
) -> dict[str, Any]:
    """`step_details` of a file_search tool-call step, in the official shape. Result `content` is
    only returned when the caller asked for `step_details.tool_calls[*].file_search.results[*].content`
    in `include[]`; pass include_content accordingly when presenting the step."""
    results = []
    for r in output.results:
        item: dict[str, Any] = {"file_id": r.file_id, "file_name": r.filename, "score": r.score}
        if include_content:
            item["content"] = [{"type": "text", "text": r.text}]
        results.append(item)
    return {
        "type": "tool_calls",
        "tool_calls": [
            {
                "id": call_id,
                "type": "file_search",
                "file_search": {"ranking_options": ranking, "results": results},
            }
        ],
    }


def file_search_tool_output(output: FileSearchOutput, max_chars: int = 12000) -> str:
    """The results as the model reads them: numbered sources it can cite as 【n†filename】."""
    parts: list[str] = []
    used = 0
    for n, r in enumerate(output.results):
        block = f"【{n}†{r.filename}】\n{r.text.strip()}\n"
        if used + len(block) > max_chars and parts:
            break
        parts.append(block)
        used += len(block)
    return "\n".join(parts) if parts else "No results found in the attached files."


def file_citation_annotations(text: str, output: FileSearchOutput) -> list[dict[str, Any]]:
    """`file_citation` annotations for every 【n†...】 marker the model wrote, pointing at result n's file."""
    out = []
    for m in re.finditer(r"【(\d+)(?::\d+)?†[^】]*】", text):
        n = int(m.group(1))
        if 0 <= n < len(output.results):
            out.append(
                {
                    "type": "file_citation",
                    "text": m.group(0),
                    "start_index": m.start(),
                    "end_index": m.end(),
                    "file_citation": {"file_id": output.results[n].file_id},
                }
            )
    return out
