"""The SSE wire format: `id: <run_events.seq>`, `event: <name>`, `data: <json>`, a blank line."""

from __future__ import annotations

import json
from typing import Any

from assistants.objects import public

DONE = b"event: done\ndata: [DONE]\n\n"
# A comment line without the blank line that would end an event: the SDK's decoder would turn
# an empty event (which keeps the last id) into an empty `data` and fail to parse it.
KEEPALIVE = b": keepalive\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def encode(event: str, data: Any, seq: int | None = None) -> bytes:
    if isinstance(data, dict):
        data = public(data)
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def error_event(message: str, type: str = "server_error", code: str | None = None) -> bytes:
    return encode("error", {"error": {"message": message, "type": type, "param": None, "code": code}})
