"""Tools a Responses client runs itself: `function` (also grouped in a `namespace`), `custom`,
`local_shell`, `shell` and `apply_patch`. The model sees each as a function (a name and a JSON
schema: the run's tools hold only functions); the client gets back the call item of the kind it
declared, and answers it with that kind's output item. Replayed as history (a stateless client
re-sends them), a call item becomes the function call the model made, and its output the tool
message it read.

One table, three directions: the function a tool offers (`offered`), a model's call as the
client's item (`call_item`), and a client's call / output item as the model's call / tool
message text (`as_model_call`, `output_text`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A namespaced function reaches the model as `<namespace>__<name>` (function names allow no dot).
NAMESPACE_SEP = "__"

CALL_TYPES = ("function_call", "custom_tool_call", "local_shell_call", "shell_call", "apply_patch_call")
OUTPUT_TYPES = {
    "function_call_output": "function_call",
    "custom_tool_call_output": "custom_tool_call",
    "local_shell_call_output": "local_shell_call",
    "shell_call_output": "shell_call",
    "apply_patch_call_output": "apply_patch_call",
}
_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_BUILTIN_SPECS: dict[str, dict[str, Any]] = {
    "local_shell": {
        "description": "Run a command on the user's machine; answers its output.",
        "parameters": {
            "type": "object",
            "properties": {
                "command": _STRINGS,
                "working_directory": _STRING,
                "timeout_ms": {"type": "integer"},
            },
            "required": ["command"],
        },
    },
    "shell": {
        "description": "Run shell commands on the user's machine; answers their output.",
        "parameters": {
            "type": "object",
            "properties": {"commands": _STRINGS, "timeout_ms": {"type": "integer"}},
            "required": ["commands"],
        },
    },
    "apply_patch": {
        "description": "Create, update or delete a file on the user's machine with a V4A diff.",
        "parameters": {
            "type": "object",
            "properties": {
                "type": {"enum": ["create_file", "update_file", "delete_file"]},
                "path": _STRING,
                "diff": _STRING,
            },
            "required": ["type", "path"],
        },
    },
}


@dataclass(frozen=True)
class ClientTool:
    kind: str  # function | custom | local_shell | shell | apply_patch
    name: str  # the name the client declared (the tool type for the built-in kinds)
    namespace: str | None = None

    @property
    def model_name(self) -> str:
        return f"{self.namespace}{NAMESPACE_SEP}{self.name}" if self.namespace else self.name


def _custom_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    """A custom tool takes free text: the model fills one string. A `regex` grammar constrains it
    (the string's `pattern`, enforced by the same JSON-schema decoding as any function); a `lark`
    grammar is described to the model but not enforced (README)."""
    fmt = tool.get("format") or {}
    text: dict[str, Any] = {"type": "string"}
    if (
        fmt.get("type") == "grammar"
        and fmt.get("syntax") == "regex"
        and isinstance(fmt.get("definition"), str)
    ):
        text["pattern"] = fmt["definition"]
    return {"type": "object", "properties": {"input": text}, "required": ["input"]}


def _custom_description(tool: dict[str, Any]) -> str:
    fmt = tool.get("format") or {}
    about = tool.get("description") or ""
    if fmt.get("type") == "grammar" and fmt.get("syntax") == "lark":
        about += f"\nThe input must follow this Lark grammar:\n{fmt.get('definition', '')}"
    return about.strip()


def offered(tool: dict[str, Any]) -> list[tuple[ClientTool, dict[str, Any]]]:
    """The functions (OpenAI function definitions) one Responses tool offers the model, each with
    the client tool it stands for; [] for other tool types."""
    kind = tool.get("type")
    if kind == "function":
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        return [(ClientTool("function", str(tool.get("name"))), fn)]
    if kind == "custom":
        ct = ClientTool("custom", str(tool.get("name")))
        fn = {
            "name": ct.name,
            "description": _custom_description(tool),
            "parameters": _custom_parameters(tool),
        }
        return [(ct, fn)]
    if kind == "namespace":
        out = []
        for sub in tool.get("tools") or []:
            for ct, fn in offered(sub):
                named = ClientTool(ct.kind, ct.name, str(tool.get("name")))
                out.append((named, {**fn, "name": named.model_name}))
        return out
    if kind in _BUILTIN_SPECS:
        return [(ClientTool(kind, kind), {"name": kind, **_BUILTIN_SPECS[kind]})]
    return []


def catalog(tools: list[dict[str, Any]] | None) -> dict[str, ClientTool]:
    """model-facing function name -> the client tool, for a request's tools."""
    return {ct.model_name: ct for t in tools or [] for ct, _ in offered(t)}


def _args(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def call_item(call_id: str, name: str, arguments: str, tools: dict[str, ClientTool]) -> dict[str, Any]:
    """A model's function call as the item of the kind its tool was declared as."""
    ct = tools.get(name) or ClientTool("function", name)
    suffix = call_id.removeprefix("call_")
    base: dict[str, Any] = {"call_id": call_id, "status": "completed"}
    item: dict[str, Any]
    action: dict[str, Any]
    if ct.kind == "custom":
        item = {"type": "custom_tool_call", "id": "ctc_" + suffix, **base, "name": ct.name}
        item["input"] = str(_args(arguments).get("input", ""))
    elif ct.kind == "local_shell":
        a = _args(arguments)
        action = {"type": "exec", "command": a.get("command") or [], "env": {}}
        action.update({k: a[k] for k in ("working_directory", "timeout_ms") if a.get(k) is not None})
        item = {"type": "local_shell_call", "id": "lsh_" + suffix, **base, "action": action}
    elif ct.kind == "shell":
        a = _args(arguments)
        action = {
            "commands": a.get("commands") or [],
            "timeout_ms": a.get("timeout_ms"),
            "max_output_length": None,
        }
        item = {"type": "shell_call", "id": "sh_" + suffix, **base, "action": action}
    elif ct.kind == "apply_patch":
        a = _args(arguments)
        op: dict[str, Any] = {"type": a.get("type") or "update_file", "path": a.get("path") or ""}
        if op["type"] != "delete_file":
            op["diff"] = a.get("diff") or ""
        item = {"type": "apply_patch_call", "id": "apc_" + suffix, **base, "operation": op}
    else:
        item = {
            "type": "function_call",
            "id": "fc_" + suffix,
            **base,
            "name": ct.name,
            "arguments": arguments,
        }
        if ct.namespace:
            item["namespace"] = ct.namespace
    return item


def call_id_of(item: dict[str, Any]) -> Any:
    """The call id an output item answers (`local_shell_call_output` names it `id`)."""
    return item.get("id") if item.get("type") == "local_shell_call_output" else item.get("call_id")


def as_model_call(item: dict[str, Any]) -> dict[str, Any]:
    """A replayed call item as the function call the model made (chat `tool_calls` entry)."""
    kind = item["type"]
    if kind == "function_call":
        ns = item.get("namespace")
        name = f"{ns}{NAMESPACE_SEP}{item['name']}" if ns else item["name"]
        arguments = item.get("arguments") or ""
    elif kind == "custom_tool_call":
        name, arguments = item["name"], json.dumps({"input": item.get("input", "")}, ensure_ascii=False)
    elif kind == "local_shell_call":
        action = item.get("action") or {}
        name, arguments = (
            "local_shell",
            json.dumps({"command": action.get("command") or []}, ensure_ascii=False),
        )
    elif kind == "shell_call":
        action = item.get("action") or {}
        name, arguments = "shell", json.dumps({"commands": action.get("commands") or []}, ensure_ascii=False)
    else:  # apply_patch_call
        op = item.get("operation") or {}
        name, arguments = "apply_patch", json.dumps(op, ensure_ascii=False)
    return {"id": item["call_id"], "type": "function", "function": {"name": name, "arguments": arguments}}


def _parts_text(output: Any) -> str:
    """An output given as content parts (input_text / input_image / input_file) as text."""
    if isinstance(output, str):
        return output
    texts = []
    for part in output or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        elif kind == "input_image":
            texts.append("[image]")
        elif kind == "input_file":
            texts.append(f"[file {part.get('filename') or part.get('file_id') or ''}]".replace(" ]", "]"))
    return "\n".join(texts)


def _shell_text(chunks: Any) -> str:
    out = []
    for c in chunks or []:
        if not isinstance(c, dict):
            continue
        out += [s for s in (c.get("stdout"), c.get("stderr")) if s]
        outcome = c.get("outcome") or {}
        if outcome.get("type") == "exit":
            out.append(f"[exit code {outcome.get('exit_code')}]")
        elif outcome.get("type") == "timeout":
            out.append("[timed out]")
    return "\n".join(out)


def output_text(item: dict[str, Any]) -> str:
    """What the model reads of an output item."""
    kind = item["type"]
    if kind == "shell_call_output":
        return _shell_text(item.get("output"))
    if kind == "apply_patch_call_output":
        return "\n".join(s for s in (item.get("status"), item.get("output")) if s)
    return _parts_text(item.get("output"))
