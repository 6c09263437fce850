"""Streaming latency: time to first token through the API's SSE vs. the model's own, per-token cost.

Prints the machine, then for the same greedy prompt:
  - model: first-token time and decode time per token of the inference engine in this process
    (the engine the inference worker runs, the same chat-templated prompt ids),
  - API: POST /threads/{id}/runs with stream=true -> first `thread.message.delta` received, and
    (last delta - first delta) / (completion tokens - 1) as seen by the client,
  - the differences: what queueing a run in Temporal, the event log and SSE add to the first
    token, and what they add per token (deltas are coalesced every 50 ms, so a stream is late by
    up to 50 ms at each end: that is part of the overhead measured, by design).

Against a running stack with --base-url/--api-key (its inference worker should be otherwise
idle), or a scratch `assistants up` without. Appends a section to bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_streaming.py [--tokens 32] [--reps 3] [--base-url URL --api-key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
from _common import append_results, machine, scratch_stack

MODEL = "smollm2-135m-instruct"
INSTRUCTIONS = "You are a helpful assistant."
PROMPT = "Tell me a short story about a lighthouse keeper."


def model_timings(tokens: int, reps: int) -> tuple[list[float], list[float]]:
    """First-token seconds and decode seconds per token of the engine, in this process."""
    from activities.llm.engine import GenerationRequest
    from activities.llm.registry import ModelRegistry
    from assistants.settings import get_settings

    model = ModelRegistry(get_settings()).get(MODEL)
    ids = model.encode_chat(
        [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": PROMPT}]
    )
    firsts, per_token = [], []

    async def once() -> None:
        req = GenerationRequest(prompt_ids=ids, max_new_tokens=tokens, temperature=0.0, stop_token_ids=())
        res = await model.engine.generate(req)
        assert res.timings.first_token_s is not None
        firsts.append(res.timings.first_token_s)
        per_token.append(
            (res.timings.total_s - res.timings.first_token_s) / max(1, res.completion_tokens - 1)
        )

    for _ in range(reps + 1):  # the first one warms up
        asyncio.run(once())
    with contextlib.suppress(Exception):
        model.engine.close()
    return firsts[1:], per_token[1:]


def api_timings(
    base_url: str, key: str, tokens: int, reps: int
) -> tuple[list[float], list[float], list[int]]:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    firsts, per_token, deltas = [], [], []
    with httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=300) as http:
        assistant = http.post("assistants", json={"model": MODEL, "instructions": INSTRUCTIONS}).json()
        for _ in range(reps + 1):
            thread = http.post("threads", json={"messages": [{"role": "user", "content": PROMPT}]}).json()
            body = {
                "assistant_id": assistant["id"],
                "stream": True,
                "temperature": 0,
                "max_completion_tokens": tokens,
            }
            t0 = time.perf_counter()
            stamps: list[float] = []
            run: dict[str, Any] = {}
            with http.stream("POST", f"threads/{thread['id']}/runs", json=body) as resp:
                for event, data in _sse(resp.iter_lines()):
                    if event == "thread.message.delta":
                        stamps.append(time.perf_counter() - t0)
                    elif event.startswith("thread.run."):
                        run = json.loads(data)
            n = (run.get("usage") or {}).get("completion_tokens") or 0
            if not stamps or n < 2:
                raise RuntimeError(f"run {run.get('id')} ended {run.get('status')} with {len(stamps)} deltas")
            firsts.append(stamps[0])
            per_token.append((stamps[-1] - stamps[0]) / (n - 1))
            deltas.append(len(stamps))
    return firsts[1:], per_token[1:], deltas[1:]


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    event, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and event:
            yield event, data
            event, data = "", ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--base-url", help="a running stack's /v1 URL (default: start a scratch stack)")
    parser.add_argument("--api-key")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with contextlib.ExitStack() as stack:
        if args.base_url:
            base_url, key = args.base_url, args.api_key
        else:
            handle = stack.enter_context(scratch_stack("bench-streaming-"))
            base_url, key = handle.base_url, handle.create_key("bench")
        api_first, api_tok, deltas = api_timings(base_url, key, args.tokens, args.reps)
    model_first, model_tok = model_timings(args.tokens, args.reps)

    med = statistics.median
    lines = [
        f"machine: {machine()}",
        f"prompt: greedy, {args.tokens} new tokens, {args.reps} runs each after one warm-up",
        f"first token: model {med(model_first) * 1000:.0f} ms, through the API {med(api_first) * 1000:.0f} ms "
        f"(POST -> first SSE delta); overhead {(med(api_first) - med(model_first)) * 1000:.0f} ms",
        f"per token: model {med(model_tok) * 1000:.1f} ms, through the API {med(api_tok) * 1000:.1f} ms; "
        f"overhead {(med(api_tok) - med(model_tok)) * 1000:.1f} ms/token ({med(deltas):.0f} SSE deltas per run)",
    ]
    for line in lines:
        print(line)
    if not args.no_write:
        append_results("bench_streaming.py", lines)


if __name__ == "__main__":
    main()
