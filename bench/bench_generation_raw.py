"""Raw generation throughput: HF `generate` vs the continuous-batching engine.

No server, no Temporal: this isolates the model + scheduler. Prints the machine, then
  - HF `model.generate` at batch 1 (and a padded static batch, for reference),
  - the engine alone (batch 1),
  - aggregate tokens/s and p50/p95 latency with N concurrent requests through the engine,
all greedy, `--new-tokens` each with stop tokens ignored so every request is the same length.
Appends a dated section to bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_generation_raw.py [--concurrency 1,4,8,16] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import torch
from _common import append_results, machine, pct

from activities.llm.engine import GenerationRequest
from activities.llm.registry import ModelRegistry
from assistants.settings import Settings

QUESTIONS = [
    "Explain how a bicycle works.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main differences between lists and tuples in Python?",
    "Describe the water cycle to a ten year old.",
]


def hf_generate(model, prompts: list[list[int]], new_tokens: int, pad_id: int) -> float:
    """Tokens/s of one padded `generate` call over all prompts (left padding)."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(model.device), mask.to(model.device)
    sync()
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
    sync()
    elapsed = time.perf_counter() - t
    assert out.shape[1] - width == new_tokens
    return len(prompts) * new_tokens / elapsed


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


async def engine_run(engine, prompts: list[list[int]], new_tokens: int) -> tuple[float, list[float]]:
    """Start all prompts at once; aggregate tokens/s and each request's latency."""
    reqs = [GenerationRequest(p, max_new_tokens=new_tokens, stop_token_ids=()) for p in prompts]
    t = time.perf_counter()
    results = await asyncio.gather(*(engine.generate(r) for r in reqs))
    elapsed = time.perf_counter() - t
    assert all(r.completion_tokens == new_tokens for r in results)
    return sum(r.completion_tokens for r in results) / elapsed, [r.timings.total_s for r in results]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]

    settings = Settings(max_batch_size=max(levels + [1]))
    loaded = ModelRegistry(settings).get()
    model, engine = loaded.model, loaded.engine
    prompts = [loaded.encode_chat([{"role": "user", "content": q}]) for q in QUESTIONS]
    pad = engine.pad_token_id
    n = args.new_tokens
    lines = [
        f"machine: {machine()}",
        f"model: {loaded.name} on {loaded.device} {model.dtype}, {n} new tokens, greedy",
    ]
    print(lines[0], lines[1], sep="\n", flush=True)

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    hf_generate(model, prompts[:1], 8, pad)  # warm-up
    raw = statistics.median(hf_generate(model, prompts[:1], n, pad) for _ in range(2))
    report(f"hf generate, batch 1: {raw:.1f} tok/s")
    static8 = hf_generate(model, [prompts[i % len(prompts)] for i in range(8)], n, pad)
    report(f"hf generate, padded static batch 8: {static8:.1f} tok/s aggregate")

    async def engine_part() -> None:
        await engine_run(engine, prompts[:1], 8)  # warm-up
        single = statistics.median([(await engine_run(engine, prompts[:1], n))[0] for _ in range(2)])
        report(f"engine alone, batch 1: {single:.1f} tok/s ({single / raw:.0%} of hf generate)")
        for c in levels:
            tps, lat = await engine_run(engine, [prompts[i % len(prompts)] for i in range(c)], n)
            report(
                f"engine, {c:>2} concurrent: {tps:6.1f} tok/s aggregate ({tps / single:.1f}x single), "
                f"latency p50 {pct(lat, 0.5):.2f} s p95 {pct(lat, 0.95):.2f} s"
            )

    asyncio.run(engine_part())
    loaded.engine.close()

    if not args.no_write:
        append_results("bench_generation_raw.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
