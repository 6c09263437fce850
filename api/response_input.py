"""Responses API request → the Assistants core's shapes: input items become thread messages (or
function outputs for a waiting run), tools / tool_choice / text.format become a run's options.

Every refusal is a 400 naming the offending parameter; what passes is then checked again by the
Assistants validators (MessageCreate, RunOptions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from api.errors import bad_request
from assistants.objects import message_content
from assistants.schemas import MessageCreate, RunOptions
from assistants.schemas_responses import ResponseCreate


@dataclass
class ParsedInput:
    messages: list[MessageCreate] = field(default_factory=list)
    # Input items as the response's input_items lists them, in order (ids filled in later).
    items: list[dict[str, Any]] = field(default_factory=list)
    system: list[str] = field(default_factory=list)  # system / developer messages
    outputs: dict[str, str] = field(default_factory=dict)  # call_id -> function output
    calls: set[str] = field(default_factory=set)  # call_ids of function_call items (replayed)


def _invalid(message: str, param: str) -> Exception:
    return bad_request(message, param, "invalid_value")


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid("A message's content must be a string or a list of parts.", param)
    texts = [
        p.get("text", "")
        for p in content
        if isinstance(p, dict)
        and p.get("type") in ("input_text", "output_text")
        and isinstance(p.get("text"), str)
    ]
    if len(texts) != len(content):
        raise _invalid("system and developer messages may hold only text parts.", param)
    return "\n".join(texts)


def _part(part: Any, param: str) -> dict[str, Any]:
    """A Responses content part as an Assistants message content part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise _invalid("A text part needs a string `text`.", param)
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        detail = part.get("detail") or "auto"
        if part.get("file_id"):
            return {"type": "image_file", "image_file": {"file_id": part["file_id"], "detail": detail}}
        if part.get("image_url"):
            return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": detail}}
        raise _invalid("An input_image part needs `image_url` or `file_id`.", param)
    raise _invalid(f"Content part type {kind!r} is not supported.", param)


def message_of(item: dict[str, Any], param: str) -> MessageCreate:
    """A `message` item (role user / assistant) as a MessageCreate."""
    content = item.get("content")
    if not isinstance(content, (str, list)):
        raise _invalid("A message's content must be a string or a list of parts.", f"{param}.content")
    parts = content if isinstance(content, str) else [_part(p, f"{param}.content") for p in content]
    try:
        return MessageCreate.model_validate({"role": item["role"], "content": parts})
    except ValidationError as exc:
        raise _invalid(f"Invalid message: {exc.errors()[0]['msg']}", param) from None


def parse_input(raw: str | list[dict[str, Any]] | None, param: str = "input") -> ParsedInput:
    out = ParsedInput()
    if raw is None:
        return out
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    for i, item in enumerate(raw):
        where = f"{param}[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                out.system.append(_text_of(item.get("content") or "", where))
                out.items.append({"type": "message", "role": role, "content": item.get("content")})
            elif role in ("user", "assistant"):
                out.messages.append(message_of(item, where))
                out.items.append({"type": "message", "role": role})
            else:
                raise _invalid(f"Unknown message role {role!r}.", f"{where}.role")
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not isinstance(output, str):
                raise _invalid("A function_call_output item needs string `call_id` and `output`.", where)
            if call_id in out.outputs:
                raise _invalid(f"Duplicate function_call_output for call_id {call_id!r}.", where)
            out.outputs[call_id] = output
            out.items.append({"type": "function_call_output", "call_id": call_id, "output": output})
        elif kind == "function_call":
            # Replayed history: accepted only for the calls the waiting run made (checked later).
            out.calls.add(str(item.get("call_id")))
        else:
            raise _invalid(f"Input item type {kind!r} is not supported.", f"{where}.type")
    if out.outputs and out.messages:
        raise _invalid("function_call_output items cannot be sent with new messages in one response.", param)
    return out


def count_items(
    raw: str | list[dict[str, Any]] | None, param: str = "input"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Input items as an input token count renders them, in order: messages (content stored as the
    Messages API stores it), function calls and their outputs; and the system / developer texts,
    which join the instructions as they do in a response."""
    items: list[dict[str, Any]] = []
    system: list[str] = []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    for i, item in enumerate(raw or []):
        where = f"{param}[{i}]"
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("system", "developer"):
            system.append(_text_of(item.get("content") or "", where))
        elif kind == "message" and item.get("role") in ("user", "assistant"):
            items.append(
                {"type": "message", "role": item["role"], "content": message_content(message_of(item, where))}
            )
        elif kind == "message":
            raise _invalid(f"Unknown message role {item.get('role')!r}.", f"{where}.role")
        elif kind == "function_call":
            fields = [item.get(k) for k in ("call_id", "name", "arguments")]
            if not all(isinstance(f, str) for f in fields):
                raise _invalid("A function_call item needs string `call_id`, `name` and `arguments`.", where)
            items.append({"type": kind, **{k: item[k] for k in ("call_id", "name", "arguments")}})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str):
                raise _invalid("A function_call_output item needs string `call_id` and `output`.", where)
            items.append({"type": kind, "call_id": item["call_id"], "output": item["output"]})
        else:
            raise _invalid(f"Input item type {kind!r} is not supported.", f"{where}.type")
    return items, system


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    kind = tool.get("type")
    if kind == "function":
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        return {"type": "function", "function": fn}
    if kind == "file_search":
        opts = {k: tool[k] for k in ("max_num_results", "ranking_options") if tool.get(k) is not None}
        return {"type": "file_search", **({"file_search": opts} if opts else {})}
    if kind == "code_interpreter":
        return {"type": "code_interpreter"}
    raise _invalid(f"Tool type {kind!r} is not supported.", f"tools[{i}].type")


def vector_store_ids(body: ResponseCreate) -> list[str]:
    ids = [t.get("vector_store_ids") or [] for t in body.tools or [] if t.get("type") == "file_search"]
    if not all(isinstance(i, list) and all(isinstance(s, str) for s in i) for i in ids):
        raise _invalid("file_search vector_store_ids must be a list of ids.", "tools")
    return [sid for i in ids for sid in i]


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if choice.get("type") in ("file_search", "code_interpreter"):
        return {"type": choice["type"]}
    raise _invalid(f"tool_choice type {choice.get('type')!r} is not supported.", "tool_choice")


def _response_format(text: dict[str, Any] | None) -> Any:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _invalid("text.format must be an object.", "text.format")
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "description", "schema", "strict") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": spec}
    return {"type": fmt.get("type")}


def run_options(body: ResponseCreate, model: str, system: list[str]) -> RunOptions:
    instructions = "\n\n".join([s for s in [body.instructions, *system] if s]) or None
    try:
        return RunOptions.model_validate(
            {
                "model": model,
                "instructions": instructions,
                "tools": [_tool(t, i) for i, t in enumerate(body.tools or [])],
                "tool_choice": _tool_choice(body.tool_choice),
                "parallel_tool_calls": body.parallel_tool_calls,
                "response_format": _response_format(body.text),
                "temperature": body.temperature,
                "top_p": body.top_p,
                "max_completion_tokens": body.max_output_tokens,
                "reasoning_effort": (body.reasoning or {}).get("effort"),
            }
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        param = {
            "max_completion_tokens": "max_output_tokens",
            "response_format": "text.format",
            "reasoning_effort": "reasoning.effort",
        }.get(str(err["loc"][0]), str(err["loc"][0]))
        raise bad_request(f"Invalid {loc}: {err['msg']}", param, "invalid_value") from None
