"""One streamed chat completion from an OpenAI-compatible engine (`openai` provider models).

The request is the OpenAI Chat Completions body built from the turn (messages, tools,
tool_choice, parallel_tool_calls, response_format, sampling, seed, max_tokens when the turn has a
budget) with `stream_options.include_usage`, so usage comes from the engine (with the cached
prompt tokens and reasoning tokens it reports). Text deltas and tool-call
argument deltas reach the callbacks as they arrive.

Errors: the engine's 4xx (unknown model, context too long, a schema it refuses) are the request's
fault and end the run with the engine's message (`UpstreamRejected`, non-retryable); 408, 429,
5xx and connection errors raise `UpstreamUnavailable`, which Temporal retries with its policy
(the HTTP client's own retries are off, so one attempt is one request). Cancelling the caller
closes the upstream stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from assistants.model_providers import RemoteModel

RETRYABLE_STATUS = {408, 409, 425, 429}


class UpstreamRejected(Exception):
    """The engine refused the request (4xx): retrying cannot help."""


class UpstreamUnavailable(Exception):
    """The engine failed or could not be reached: a later attempt may succeed."""


@dataclass
class RemoteCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class RemoteResult:
    text: str = ""
    calls: list[RemoteCall] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, those the engine reused (prompt_tokens_details)
    reasoning_tokens: int = 0  # of completion_tokens (completion_tokens_details)


OnText = Callable[[str], None]
OnCall = Callable[[int, RemoteCall, str], None]  # (index, call so far, new argument text)


def _error_message(body: bytes) -> str:
    try:
        err = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500]
    if isinstance(err, dict):
        inner = err.get("error", err)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner)[:500]
        return str(err.get("message") or inner)[:500]
    return str(err)[:500]


async def stream_chat(
    client: httpx.AsyncClient,
    model: RemoteModel,
    body: dict[str, Any],
    on_text: OnText | None = None,
    on_call: OnCall | None = None,
) -> RemoteResult:
    headers = {"Accept": "text/event-stream"}
    key = model.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = {
        **model.extra_body,
        **body,
        "model": model.model,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out = RemoteResult()
    try:
        async with client.stream(
            "POST",
            f"{model.base_url}/chat/completions",
            json=payload,
            headers=headers,
            timeout=httpx.Timeout(model.timeout_s, connect=10.0),
        ) as resp:
            if resp.status_code >= 400:
                detail = _error_message(await resp.aread())
                msg = f"model {model.name!r} ({model.base_url}) answered {resp.status_code}: {detail}"
                if resp.status_code < 500 and resp.status_code not in RETRYABLE_STATUS:
                    raise UpstreamRejected(msg)
                raise UpstreamUnavailable(msg)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                _apply(out, json.loads(data), on_text, on_call)
    except httpx.TransportError as e:  # connect, read, protocol errors: the engine went away
        raise UpstreamUnavailable(f"model {model.name!r} ({model.base_url}): {type(e).__name__}: {e}") from e
    return out


def _apply(out: RemoteResult, chunk: dict[str, Any], on_text: OnText | None, on_call: OnCall | None) -> None:
    usage = chunk.get("usage")
    if usage:
        out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        out.completion_tokens = int(usage.get("completion_tokens") or 0)
        out.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        out.reasoning_tokens = int(
            (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        )
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            out.text += text
            if on_text:
                on_text(text)
        for tc in delta.get("tool_calls") or []:
            index = int(tc.get("index", len(out.calls)))
            while len(out.calls) <= index:
                out.calls.append(RemoteCall())
            call = out.calls[index]
            call.id = tc.get("id") or call.id
            fn = tc.get("function") or {}
            call.name += fn.get("name") or ""
            piece = fn.get("arguments") or ""
            call.arguments += piece
            if on_call:
                on_call(index, call, piece)
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
