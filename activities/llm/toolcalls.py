"""The tool-call format: how tools are shown to a model and how its calls are read back.

Models with a tool-aware chat template (Qwen2.5, Llama 3.1, Hermes...) get the tools through the
template. Models without one (SmolLM2) get them in the system prompt, with the Hermes-style
format most open models were tuned on: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
The parser is lenient about what small models actually emit (missing closing tags, bare JSON,
`parameters` instead of `arguments`, arguments as a JSON string) and never lets raw markup reach
message text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ParsedCall:
    name: str
    arguments: Any  # decoded JSON value (normally a dict); None when it did not parse


def template_supports_tools(tokenizer: Any) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return isinstance(template, str) and "tools" in template


# Built-in tools are shown to the model as functions; their calls map back to the tool type.
BUILTIN_FUNCTIONS: dict[str, dict[str, Any]] = {
    "code_interpreter": {
        "name": "python",
        "description": "Run Python code in a Jupyter kernel. The user's files are in /mnt/data. Print what you want to see.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
    "file_search": {
        "name": "file_search",
        "description": "Search the user's uploaded files for passages relevant to a query.",
        # Bounded: a small model under guided decoding can otherwise fill its whole budget with one query.
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 256}},
            "required": ["query"],
        },
    },
}
TOOL_TYPE_OF = {spec["name"]: tool_type for tool_type, spec in BUILTIN_FUNCTIONS.items()}


def function_specs(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [{"type": "function", "function": t["function"]} for t in tools if t.get("type") == "function"]
    user_names = {s["function"]["name"] for s in specs}
    for t in tools:
        builtin = BUILTIN_FUNCTIONS.get(t.get("type", ""))
        if builtin and builtin["name"] not in user_names:
            specs.append({"type": "function", "function": builtin})
    return specs


def tool_type(name: str, tools: list[dict[str, Any]]) -> str:
    """The tool type a called name belongs to (a user function shadows a built-in name)."""
    if any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
        return "function"
    return TOOL_TYPE_OF.get(name, "function")


def tools_system_prompt(specs: list[dict[str, Any]]) -> str:
    lines = [
        "You can call functions. The available functions, as JSON schemas:",
        "<tools>",
        *(json.dumps(s["function"], ensure_ascii=False) for s in specs),
        "</tools>",
        "To call a function, reply with exactly one line per call:",
        '<tool_call>{"name": "<function name>", "arguments": {<arguments as JSON>}}</tool_call>',
        "Otherwise reply to the user normally.",
    ]
    return "\n".join(lines)


def render_call(name: str, arguments: str) -> str:
    try:
        args: Any = json.loads(arguments)
    except ValueError:
        args = arguments
    return f"{OPEN_TAG}{json.dumps({'name': name, 'arguments': args}, ensure_ascii=False)}{CLOSE_TAG}"


def messages_for_template(
    messages: list[dict[str, Any]], specs: list[dict[str, Any]], native: bool
) -> list[dict[str, Any]]:
    """Rewrite assistant tool calls and tool results for a template without tool support."""
    if native or not specs and not any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        return messages
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for m in messages:
        for c in m.get("tool_calls") or []:
            names[c["id"]] = c["function"]["name"]
        if m.get("tool_calls"):
            calls = "\n".join(
                render_call(c["function"]["name"], c["function"]["arguments"]) for c in m["tool_calls"]
            )
            out.append({"role": "assistant", "content": calls})
        elif m["role"] == "tool":
            # Plain words, not markup: small models echo whatever markup they are shown.
            name = names.get(m.get("tool_call_id") or "", "the function")
            out.append(
                {
                    "role": "user",
                    "content": f"The function {name} returned: {m['content']}\nUse this result to answer.",
                }
            )
        else:
            out.append({k: v for k, v in m.items() if k in ("role", "content")})
    if specs:
        prompt = tools_system_prompt(specs)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{prompt}"}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


def _decode_first_json(text: str) -> tuple[Any, bool]:
    text = text.strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None, False
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
        return value, True
    except ValueError:
        return None, False


def _as_calls(value: Any) -> list[ParsedCall]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "function" in item and isinstance(item["function"], dict):  # OpenAI-shaped
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or not name:
            continue
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        calls.append(ParsedCall(name=name, arguments=args))
    return calls


def text_before_markup(text: str) -> str:
    """The message text of an output: what precedes its first tool-call markup (what a
    MarkupFilter streams), the whole text if it has none."""
    idx = text.find(OPEN_TAG)
    return text if idx < 0 else text[:idx]


def parse_tool_calls(text: str) -> tuple[str, list[ParsedCall]]:
    """Split model output into (message text without markup, tool calls)."""
    calls: list[ParsedCall] = []
    if OPEN_TAG in text:
        for block in _BLOCK.findall(text):
            value, ok = _decode_first_json(block)
            if ok:
                calls.extend(_as_calls(value))
            else:
                name = re.search(r'"name"\s*:\s*"([^"]+)"', block)
                if name:
                    calls.append(ParsedCall(name=name.group(1), arguments=None))
        return text[: text.find(OPEN_TAG)], calls
    stripped = text.strip()
    if stripped.startswith(("{", "[")):  # bare JSON call, as some models emit
        value, ok = _decode_first_json(stripped)
        if ok:
            calls = _as_calls(value)
            if calls:
                return "", calls
    return text, []


class MarkupFilter:
    """Streams text through, holding back anything that may be the start of a tool call: from
    the first opening tag on, nothing more is streamed. With `bare_json` (tools are offered, and
    small models may call one as bare JSON) a leading `{` or `[` is held back too, until the
    output shows what it is; without it (no tools this turn: a JSON answer is text) only tags."""

    def __init__(self, bare_json: bool = True) -> None:
        self.bare_json = bare_json
        self.pending = ""
        self.emitted = ""
        self.in_call = False
        self.call_text = ""  # what follows the first opening tag (the calls), as it arrives

    def feed(self, piece: str) -> str:
        if self.in_call:
            self.call_text += piece
            return ""
        self.pending += piece
        idx = self.pending.find(OPEN_TAG)
        if idx >= 0:
            self.in_call = True
            out, self.call_text, self.pending = self.pending[:idx], self.pending[idx + len(OPEN_TAG) :], ""
            return self._emit(out)
        stripped = (self.emitted + self.pending).lstrip()
        if not self.emitted and self.bare_json and (not stripped or stripped[:1] in ("{", "[")):
            return ""  # leading blanks, or maybe a bare JSON call: decide later
        # Keep back a suffix that could still grow into the opening tag.
        keep = 0
        for n in range(min(len(OPEN_TAG) - 1, len(self.pending)), 0, -1):
            if OPEN_TAG.startswith(self.pending[-n:]):
                keep = n
                break
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return self._emit(out)

    def _emit(self, out: str) -> str:
        self.emitted += out
        return out


_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]+)"\s*,\s*"arguments"\s*:\s*(?=\{)')


class ArgumentsReader:
    """Reads the first call out of the text after the opening tag as it arrives: the function's
    name once `{"name": "...", "arguments": {` has been written, then the arguments object's raw
    text, character by character, up to its closing brace. A call in any other shape (arguments
    first, arguments as a string) is never read (`name` stays None)."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.raw = ""  # the arguments as the model wrote them so far
        self.closed = False  # the arguments object is complete
        self._start = -1  # index in the call text where the arguments begin
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, call_text: str) -> str:
        """Take the whole call text so far; return the arguments' characters it adds."""
        if self.name is None:
            head = _CALL_HEAD.match(call_text)
            if head is None:
                return ""
            self.name, self._start = head.group(1), head.end()
        if self.closed:
            return ""
        out = []
        for c in call_text[self._start + len(self.raw) :]:
            out.append(c)
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self.closed = True
                    break
        piece = "".join(out)
        self.raw += piece
        return piece
