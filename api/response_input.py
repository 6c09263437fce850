"""Responses API request → the Assistants core's shapes: input items become thread messages (or
function outputs for a waiting run), tools / tool_choice / text.format become a run's options.

Every refusal is a 400 naming the offending parameter; what passes is then checked again by the
Assistants validators (MessageCreate, RunOptions)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from api.errors import bad_request
from assistants import client_tools
from assistants.objects import message_content
from assistants.schemas import MessageCreate, RunOptions
from assistants.schemas_responses import ResponseCreate


@dataclass
class ParsedInput:
    # The history the input adds, in order: messages (user / assistant) and the other items
    # (calls, outputs, reasoning, built-in calls), which go to thread_items.
    entries: list[MessageCreate | dict[str, Any]] = field(default_factory=list)
    # Input items as the response's input_items lists them, in order (ids filled in later).
    items: list[dict[str, Any]] = field(default_factory=list)
    system: list[str] = field(default_factory=list)  # system / developer messages
    outputs: dict[str, str] = field(default_factory=dict)  # call_id -> output, as the model reads it
    output_at: dict[str, int] = field(default_factory=dict)  # call_id -> index of its output item
    calls: dict[str, int] = field(default_factory=dict)  # call_id -> index of its (replayed) call item

    @property
    def messages(self) -> list[MessageCreate]:
        return [e for e in self.entries if isinstance(e, MessageCreate)]

    @property
    def unanswered(self) -> list[str]:
        """Replayed calls of this input that no output item of it answers."""
        return [c for c in self.calls if c not in self.outputs]


def _invalid(message: str, param: str) -> Exception:
    return bad_request(message, param, "invalid_value")


def _file_text(part: dict[str, Any], param: str) -> str:
    """An `input_file` part: a text file sent inline (`file_data`, base64 or a data URL) is read;
    any other file stays a mark naming it (files are searched through file_search here)."""
    name = part.get("filename") or part.get("file_id") or part.get("file_url") or "file"
    data = part.get("file_data")
    if isinstance(data, str):
        raw = data.split(",", 1)[1] if data.startswith("data:") else data
        try:
            return f"[{name}]\n" + base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            pass
    return f"[file {name}]"


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid("A message's content must be a string or a list of parts.", param)
    return "\n".join(_part(p, param)["text"] for p in content if _part(p, param)["type"] == "text")


def _part(part: Any, param: str) -> dict[str, Any]:
    """A Responses content part as an Assistants message content part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise _invalid("A text part needs a string `text`.", param)
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        if not isinstance(part.get("refusal"), str):
            raise _invalid("A refusal part needs a string `refusal`.", param)
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_file":
        return {"type": "text", "text": _file_text(part, param)}
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
    if isinstance(parts, list) and not parts:
        parts = [{"type": "text", "text": ""}]
    try:
        return MessageCreate.model_validate({"role": item["role"], "content": parts})
    except ValidationError as exc:
        raise _invalid(f"Invalid message: {exc.errors()[0]['msg']}", param) from None


def _need(item: dict[str, Any], where: str, **fields: type | tuple[type, ...]) -> None:
    for name, kind in fields.items():
        if not isinstance(item.get(name), kind):
            spelled = " and ".join(f"`{n}`" for n in fields)
            raise _invalid(
                f"A {item['type']} item needs {spelled} of the right type ({name!r} is not).", where
            )


# What each item type must carry, beyond its `type`.
_CALL_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "function_call": {"call_id": str, "name": str, "arguments": str},
    "custom_tool_call": {"call_id": str, "name": str, "input": str},
    "local_shell_call": {"call_id": str, "action": dict},
    "shell_call": {"call_id": str, "action": dict},
    "apply_patch_call": {"call_id": str, "operation": dict},
}
_OUTPUT_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "function_call_output": {"call_id": str, "output": (str, list)},
    "custom_tool_call_output": {"call_id": str, "output": (str, list)},
    "local_shell_call_output": {"id": str, "output": str},
    "shell_call_output": {"call_id": str, "output": list},
    "apply_patch_call_output": {"call_id": str, "status": str},
}
# Items kept as history that the model reads (built-in calls) or does not (the rest).
HISTORY_ITEMS = {
    "reasoning",
    "file_search_call",
    "code_interpreter_call",
    "web_search_call",
    "image_generation_call",
    "computer_call",
    "computer_call_output",
    "mcp_call",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "tool_search_call",
    "tool_search_output",
    "compaction",
    "compaction_trigger",
    "additional_tools",
}


def _message(out: ParsedInput, item: dict[str, Any], where: str) -> None:
    role = item.get("role")
    if role in ("system", "developer"):
        out.system.append(_text_of(item.get("content") or "", f"{where}.content"))
        out.items.append({"type": "message", "role": role, "content": item.get("content")})
    elif role in ("user", "assistant"):
        out.entries.append(message_of(item, where))
        out.items.append({"type": "message", "role": role})
    else:
        raise _invalid(f"Unknown message role {role!r}.", f"{where}.role")


def parse_input(raw: str | list[dict[str, Any]] | None, param: str = "input") -> ParsedInput:
    """Checks every item and sorts it: messages, calls and their outputs, other history. Calls and
    outputs must pair up within the input, except outputs for calls made earlier (the caller
    checks those against the state the request continues)."""
    out = ParsedInput()
    if raw is None:
        return out
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    for i, item in enumerate(raw):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise _invalid("Each input item must be an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            _message(out, item, where)
        elif kind in _CALL_FIELDS:
            _need(item, where, **_CALL_FIELDS[kind])
            if item["call_id"] in out.calls:
                raise _invalid(f"Duplicate {kind} item for call_id {item['call_id']!r}.", where)
            out.calls[item["call_id"]] = i
            out.entries.append(item)
            out.items.append(item)
        elif kind in _OUTPUT_FIELDS:
            _need(item, where, **_OUTPUT_FIELDS[kind])
            call_id = str(client_tools.call_id_of(item))
            if call_id in out.outputs:
                raise _invalid(f"Duplicate output for call_id {call_id!r}.", where)
            out.outputs[call_id] = client_tools.output_text(item)
            out.output_at[call_id] = i
            out.entries.append(item)
            out.items.append(item)
        elif kind in HISTORY_ITEMS:
            out.entries.append(item)
            out.items.append(item)
        elif kind == "item_reference":
            raise _invalid("item_reference items must be resolved first.", where)  # resolve_references
        else:
            raise _invalid(f"Input item type {kind!r} is not supported.", f"{where}.type")
    for call_id, at in out.output_at.items():
        if call_id in out.calls and out.calls[call_id] > at:
            raise _invalid(f"The output for call_id {call_id!r} comes before its call.", f"{param}[{at}]")
    return out


def count_items(
    raw: str | list[dict[str, Any]] | None, param: str = "input"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Input items as an input token count renders them, in order: messages (content stored as the
    Messages API stores it) and the other items as sent (activities/history_items.py renders them
    as a response's would be); and the system / developer texts, which join the instructions as
    they do in a response."""
    parsed = parse_input(raw, param)
    items = [
        {"type": "message", "role": e.role, "content": message_content(e)}
        if isinstance(e, MessageCreate)
        else e
        for e in parsed.entries
    ]
    return items, parsed.system


# Tool types accepted and echoed, but not offered to the model: no backend serves them here.
NOT_OFFERED = {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
REFUSED = {
    "mcp": "Remote MCP servers (tool type 'mcp') are not supported yet.",
    "computer_use_preview": "Tool type 'computer_use_preview' is not supported: no computer is attached here.",
    "computer": "Tool type 'computer' is not supported: no computer is attached here.",
    "image_generation": "Tool type 'image_generation' is not supported: no image model is served here.",
}


def _tools(tool: dict[str, Any], i: int) -> list[dict[str, Any]]:
    """One Responses tool as the run's tools (functions the model sees, or a built-in tool)."""
    kind = tool.get("type")
    if kind == "file_search":
        opts = {k: tool[k] for k in ("max_num_results", "ranking_options") if tool.get(k) is not None}
        return [{"type": "file_search", **({"file_search": opts} if opts else {})}]
    if kind == "code_interpreter":
        return [{"type": "code_interpreter"}]
    if kind in NOT_OFFERED:
        return []
    if kind in REFUSED:
        raise _invalid(REFUSED[kind], f"tools[{i}].type")
    offered = client_tools.offered(tool)
    if not offered:
        raise _invalid(f"Tool type {kind!r} is not supported.", f"tools[{i}].type")
    for _, fn in offered:
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _invalid("A function or custom tool needs a `name`.", f"tools[{i}].name")
    return [{"type": "function", "function": fn} for _, fn in offered]


def run_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [t for i, tool in enumerate(tools or []) for t in _tools(tool, i)]


def vector_store_ids(body: ResponseCreate) -> list[str]:
    ids = [t.get("vector_store_ids") or [] for t in body.tools or [] if t.get("type") == "file_search"]
    if not all(isinstance(i, list) and all(isinstance(s, str) for s in i) for i in ids):
        raise _invalid("file_search vector_store_ids must be a list of ids.", "tools")
    return [sid for i in ids for sid in i]


def _allowed(choice: dict[str, Any], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`allowed_tools`: the request's tools narrowed to those listed (matched by type and name)."""
    listed = choice.get("tools")
    if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
        raise _invalid("tool_choice.tools must be a list of tools.", "tool_choice.tools")

    def wanted(tool: dict[str, Any]) -> bool:
        return any(
            t.get("type") == tool.get("type") and (t.get("name") is None or t.get("name") == tool.get("name"))
            for t in listed
        )

    return [t for t in tools if wanted(t)]


def _tool_choice(choice: str | dict[str, Any] | None, names: dict[str, client_tools.ClientTool]) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    if kind in ("function", "custom"):
        name = choice.get("name")
        ns = choice.get("namespace")
        model_name = f"{ns}{client_tools.NAMESPACE_SEP}{name}" if ns else name
        return {"type": "function", "function": {"name": model_name}}
    if kind in ("local_shell", "shell", "apply_patch"):
        return {"type": "function", "function": {"name": kind}}
    if kind in ("file_search", "code_interpreter"):
        return {"type": kind}
    raise _invalid(f"tool_choice type {kind!r} is not supported.", "tool_choice")


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


def offered_tools(body: ResponseCreate) -> list[dict[str, Any]]:
    """The request's tools the model may call: all of them, or those `allowed_tools` lists."""
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return _allowed(choice, body.tools or [])
    return body.tools or []


def run_options(body: ResponseCreate, model: str, system: list[str]) -> RunOptions:
    instructions = "\n\n".join([s for s in [body.instructions, *system] if s]) or None
    try:
        return RunOptions.model_validate(
            {
                "model": model,
                "instructions": instructions,
                "tools": run_tools(offered_tools(body)),
                "tool_choice": _tool_choice(body.tool_choice, client_tools.catalog(body.tools)),
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
