"""A response's stream: its run's event stream (api/sse.py: replay of the run's event log, then
tail, retried generations already folded) translated into the Responses API's events, numbered
by `sequence_number`. The translation is a pure function of the run's log, so a replay makes the
same events with the same numbers: resuming (`starting_after=N`) replays and skips up to N."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from api.response_objects import message_item, response_object, shown
from api.sse import STOP_EVENTS, run_events
from api.sse_encode import KEEPALIVE, encode
from api.sse_hub import RunEventHub
from api.tool_call_items import call_item
from assistants import client_tools
from assistants.db.pool import Pool as DbPool

FINAL_EVENTS = {"completed": "response.completed", "incomplete": "response.incomplete"}
BUILTIN_CALLS = ("file_search", "code_interpreter")


def _parse(chunk: bytes) -> tuple[str, Any] | None:
    event, data = None, None
    for line in chunk.decode().splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
    if event is None or data is None or data == "[DONE]":
        return None
    return event, json.loads(data)


class Translator:
    """Run events in, Responses events (name, payload) out; keeps the output indexes."""

    def __init__(self, tools: list[dict[str, Any]] | None = None, include: list[str] | None = None) -> None:
        self.include = include
        self.index: dict[str, int] = {}  # output item id -> output_index
        self.texts: dict[str, str] = {}
        self.tools = client_tools.catalog(tools)  # calls go out in the form their tool was declared

    def _add(self, item: dict[str, Any]) -> int:
        self.index[item["id"]] = len(self.index)
        return self.index[item["id"]]

    def _message_created(self, msg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        item = {**message_item(msg), "status": "in_progress", "content": []}
        i = self._add(item)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            ("response.output_item.added", {"output_index": i, "item": item}),
            (
                "response.content_part.added",
                {"item_id": item["id"], "output_index": i, "content_index": 0, "part": part},
            ),
        ]

    def _message_delta(self, delta: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        i = self.index.get(delta["id"])
        if i is None:
            return []
        out = []
        for part in (delta.get("delta") or {}).get("content") or []:
            text = (part.get("text") or {}).get("value") or ""
            if part.get("type") == "text" and text:
                self.texts[delta["id"]] = self.texts.get(delta["id"], "") + text
                out.append(
                    (
                        "response.output_text.delta",
                        {
                            "item_id": delta["id"],
                            "output_index": i,
                            "content_index": 0,
                            "delta": text,
                            "logprobs": [],
                        },
                    )
                )
        return out

    def _message_done(self, msg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        i = self.index.get(msg["id"])
        if i is None:
            return []
        item = message_item(msg)
        parts = item["content"] or [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]
        where = {"item_id": msg["id"], "output_index": i, "content_index": 0}
        return [
            ("response.output_text.done", {**where, "text": parts[0]["text"], "logprobs": []}),
            ("response.content_part.done", {**where, "part": parts[0]}),
            ("response.output_item.done", {"output_index": i, "item": item}),
        ]

    def _builtin_started(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """A file_search / code_interpreter call the model began: its item, in progress."""
        item = call_item(call, False)
        if item is None or item["id"] in self.index:
            return []
        item = {**item, "code": ""} if item["type"] == "code_interpreter_call" else item
        i = self._add(item)
        where = {"item_id": item["id"], "output_index": i}
        out = [
            ("response.output_item.added", {"output_index": i, "item": item}),
            (f"response.{item['type']}.in_progress", where),
        ]
        if item["type"] == "file_search_call":
            out.append(("response.file_search_call.searching", where))
        return out

    def _code_delta(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = self._builtin_started(call)
        piece = (call.get("code_interpreter") or {}).get("input") or ""
        if piece:
            self.texts[call["id"]] = self.texts.get(call["id"], "") + piece
            where = {"item_id": call["id"], "output_index": self.index[call["id"]]}
            out.append(("response.code_interpreter_call_code.delta", {**where, "delta": piece}))
        return out

    def _builtin_done(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The call ran (the step completed): its remaining parts, then the item, done."""
        out = self._builtin_started(call)
        item = call_item(call, True)
        assert item is not None
        where = {"item_id": item["id"], "output_index": self.index[item["id"]]}
        if item["type"] == "code_interpreter_call":
            sent = self.texts.get(item["id"], "")
            rest = item["code"][len(sent) :] if item["code"].startswith(sent) else ""
            if rest:
                out.append(("response.code_interpreter_call_code.delta", {**where, "delta": rest}))
            out += [
                ("response.code_interpreter_call_code.done", {**where, "code": item["code"]}),
                ("response.code_interpreter_call.interpreting", where),
            ]
        out += [
            (f"response.{item['type']}.completed", where),
            (
                "response.output_item.done",
                {"output_index": where["output_index"], "item": shown(item, self.include)},
            ),
        ]
        return out

    def _tool_item(self, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """A call the client runs: added, its arguments (a custom tool's input), done."""
        i = self._add(item)
        where = {"item_id": item["id"], "output_index": i}
        if item["type"] == "function_call":
            started = {**item, "arguments": "", "status": "in_progress"}
            body = [
                ("response.function_call_arguments.delta", {**where, "delta": item["arguments"]}),
                (
                    "response.function_call_arguments.done",
                    {**where, "name": item["name"], "arguments": item["arguments"]},
                ),
            ]
        elif item["type"] == "custom_tool_call":
            started = {**item, "input": "", "status": "in_progress"}
            body = [
                ("response.custom_tool_call_input.delta", {**where, "delta": item["input"]}),
                ("response.custom_tool_call_input.done", {**where, "input": item["input"]}),
            ]
        else:  # local_shell_call, shell_call, apply_patch_call: whole when added
            started, body = {**item, "status": "in_progress"}, []
        return [
            ("response.output_item.added", {"output_index": i, "item": started}),
            *body,
            ("response.output_item.done", {"output_index": i, "item": item}),
        ]

    def translate(self, event: str, data: Any) -> list[tuple[str, dict[str, Any]]]:
        if event == "thread.message.created" and data.get("role") == "assistant":
            return self._message_created(data)
        if event == "thread.message.delta":
            return self._message_delta(data)
        if event in ("thread.message.completed", "thread.message.incomplete"):
            return self._message_done(data)
        calls = (data.get("step_details") or (data.get("delta") or {}).get("step_details") or {}).get(
            "tool_calls"
        )
        builtin = [c for c in calls or [] if c.get("type") in BUILTIN_CALLS]
        if event == "thread.run.step.created":
            return [e for c in builtin for e in self._builtin_started(c)]
        if event == "thread.run.step.delta":
            return [
                e
                for c in builtin
                for e in (
                    self._code_delta(c) if c["type"] == "code_interpreter" else self._builtin_started(c)
                )
            ]
        if event == "thread.run.step.completed":
            return [e for c in builtin for e in self._builtin_done(c)]
        if event == "thread.run.requires_action":
            calls = data["required_action"]["submit_tool_outputs"]["tool_calls"]
            return [e for c in calls for e in self._tool_item(call_item(c, True, self.tools) or {})]
        return []


async def response_events(
    pool: DbPool,
    hub: RunEventHub,
    resp: dict[str, Any],
    run: dict[str, Any],
    read_run: Any,
    starting_after: int = -1,
) -> AsyncIterator[bytes]:
    """The response's events from its start (those numbered above `starting_after`)."""
    number = -1

    def emit(name: str, payload: dict[str, Any]) -> bytes | None:
        nonlocal number
        number += 1
        if number <= starting_after:
            return None
        return encode(name, {"type": name, "sequence_number": number, **payload})

    start = {
        **await response_object(pool, {**resp, "_snapshot": None}, run),
        "status": "in_progress",
        "output": [],
    }
    start.update(usage=None, error=None, incomplete_details=None, completed_at=None)
    for name in ("response.created", "response.in_progress"):
        if (chunk := emit(name, {"response": start})) is not None:
            yield chunk
    translator = Translator(resp.get("tools"), resp.get("_include"))
    async for raw in run_events(pool, hub, resp["_run_id"], int(resp.get("_stream_after") or 0)):
        if raw == KEEPALIVE:
            yield raw
            continue
        parsed = _parse(raw)
        if parsed is None:
            continue
        event, data = parsed
        if event == "error":
            if (chunk := emit("error", {**data["error"]})) is not None:
                yield chunk
            return
        for name, payload in translator.translate(event, data):
            if (chunk := emit(name, payload)) is not None:
                yield chunk
        if event in STOP_EVENTS:
            final = await response_object(pool, {**resp, "_snapshot": None}, await read_run())
            name = FINAL_EVENTS.get(final["status"], "response.failed")
            if (chunk := emit(name, {"response": final})) is not None:
                yield chunk
            return
