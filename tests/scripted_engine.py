"""A SCRIPTED model: a tiny OpenAI-compatible engine (`POST /v1/chat/completions`, `GET
/v1/models`) that answers by rule, not by inference. The session stack serves it as the remote
model `scripted-codex` (tests/conftest.py) so that a client which never sends `tool_choice` (the
Codex CLI) still gets a tool call: the bundled SmolLM2 never calls a tool unless forced.

The script, applied to each request:
- last message from the user: ONE call of the shell-like function tool offered (its name holds
  shell / exec / command / bash), its arguments built from that tool's parameter schema to run
  `echo scripted-$((6*7))`: only a real shell prints `scripted-42`, so the output proves that
  the client executed the call;
- last message a `tool` result: text quoting that result (`scripted-done: ...`);
- anything else: a fixed text.
Every request body is kept in `requests` for the tests to inspect. Stdlib only; it runs in a
daemon thread of the pytest process.

    engine = ScriptedEngine().start()   # engine.base_url -> http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted-codex"
SHELL_SCRIPT = "echo scripted-$((6*7))"
SHELL_OUTPUT = "scripted-42"  # what the script prints when a shell runs it
NO_SHELL_TOOL = "scripted: no shell-like tool was offered"
SHELL_NAME = re.compile(r"shell|exec|command|bash", re.IGNORECASE)


def pick_shell_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first function tool whose name looks like a shell/exec tool."""
    for tool in tools:
        fn = tool.get("function") or {}
        if tool.get("type") == "function" and SHELL_NAME.search(fn.get("name", "")):
            return fn
    return None


def shell_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    """Arguments that run SHELL_SCRIPT, shaped by the tool's schema: an argv array
    (`{"command": ["bash", "-lc", ...]}`) or a command string (`{"cmd": "..."}`)."""
    props = parameters.get("properties") or {}
    key = next((k for k in ("command", "cmd", "script", "input") if k in props), None)
    if key is None:
        key = next((k for k, v in props.items() if v.get("type") in ("string", "array")), "command")
    args: dict[str, Any] = {}
    if (props.get(key) or {}).get("type") == "array":
        args[key] = ["bash", "-lc", SHELL_SCRIPT]
    else:
        args[key] = SHELL_SCRIPT
    # Any other required field gets a neutral value of its type.
    neutral = {"string": "", "integer": 10000, "number": 10000, "boolean": False, "array": [], "object": {}}
    for name in parameters.get("required") or []:
        if name not in args:
            args[name] = neutral.get((props.get(name) or {}).get("type", "string"), "")
    return args


def scripted_reply(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(text, tool call or None) for one chat completions request."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        content = last.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return f"scripted-done: {str(content)[:2000]}", None
    if last.get("role") == "user":
        fn = pick_shell_tool(body.get("tools") or [])
        if fn is None:
            names = [(t.get("function") or {}).get("name") for t in body.get("tools") or []]
            return f"{NO_SHELL_TOOL} (tools: {names})", None
        args = shell_arguments(fn.get("parameters") or {})
        return "", {"id": f"call_scripted_{len(messages)}", "name": fn["name"], "arguments": json.dumps(args)}
    return "scripted: nothing to do", None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]}
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.server.requests.append(body)
        text, call = scripted_reply(body)
        cid, created = f"chatcmpl-scripted-{len(self.server.requests)}", int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        finish = "tool_calls" if call else "stop"
        base = {"id": cid, "created": created, "model": body.get("model", MODEL)}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if call:
                message["tool_calls"] = [
                    {"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": call["arguments"]}}
                ]  # fmt: skip
            choice = {"index": 0, "message": message, "finish_reason": finish}
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def send(delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> None:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        send({"role": "assistant", "content": ""})
        if call:  # the id and name first, then the arguments in two pieces (as engines stream them)
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
            send({"tool_calls": [head]})
            half = len(call["arguments"]) // 2
            for piece in (call["arguments"][:half], call["arguments"][half:]):
                send({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        for word in re.findall(r"\S+\s*", text):
            send({"content": word})
        send({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            send(None, usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, Any]]


class ScriptedEngine:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.requests = []
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://{host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat completions body received, in order."""
        return self._server.requests

    def start(self) -> ScriptedEngine:
        threading.Thread(target=self._server.serve_forever, name="scripted-engine", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
