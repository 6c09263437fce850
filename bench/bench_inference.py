"""One table, side by side: raw HF `generate`, our engine alone, and our API on the in-process engine.

Same model, same prompts (system instructions + one user message, rendered by the model's chat
template), greedy, `--new-tokens` each, at 1 / 8 / 16 concurrent, all in one process run so the
columns share the machine's load (printed before and after). Per column and level:
  - aggregate tok/s: completion tokens of all requests / wall time from first start to last end,
  - TTFT p50: time to first token (HF: first streamer put after the prompt; engine: its timings;
    API: `runs.stream` call -> first `thread.message.delta`, a separate streamed pass),
  - latency p50 / p95 of one request (HF static batch: the batch's wall time for every row).
API runs go through the official `openai` SDK (`runs.create_and_poll`, default poll helper, and
`runs.stream`) with `max_completion_tokens`, `temperature=0`; their tokens come from `run.usage`.
The prompts ask for long stories so every run writes all `--new-tokens` (checked; a short run is
reported, not hidden). Raw HF and the engine ignore stop tokens, so they write exactly that many.

Hook for other engines: a column is any `Column` (a name and `async measure(level) -> Cell`, the
one `Cell` of bench/_common.py); with `--with-vllm`, `extra_columns()` imports `bench/bench_vllm.py`
and appends what its `columns(prompts, new_tokens)` returns (raw vLLM; off by default: vLLM takes
minutes to start). `ApiColumn(label, model=...)` measures our API on any model id the stack serves:
add one for the vLLM provider with `--api-models`, and start the stack with the provider settings
in `--stack-env` (KEY=VALUE, repeatable).

    .venv/bin/python bench/bench_inference.py [--concurrency 1,8,16] [--new-tokens 64] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol

import openai
import torch
from _common import ROOT, Cell, append_results, cpu_by_role, cpu_delta, machine, scratch_stack
from transformers.generation.streamers import BaseStreamer

from activities.llm.engine import GenerationRequest
from activities.llm.registry import ModelRegistry
from assistants.settings import Settings

MODEL = "smollm2-135m-instruct"
INSTRUCTIONS = "You are a helpful assistant."
SUBJECTS = [
    "a lighthouse keeper",
    "a clockmaker",
    "a deep-sea diver",
    "a beekeeper",
    "a mountain guide",
    "a train conductor",
    "a baker",
    "an astronomer",
]


def question(i: int) -> str:
    return (
        f"Write a long, detailed story about {SUBJECTS[i % len(SUBJECTS)]} who finds a message in a bottle. "
        "Use at least six paragraphs."
    )


class Column(Protocol):
    name: str

    async def measure(self, level: int) -> Cell: ...


# --- raw HF generate (static padded batch) -------------------------------------------------------
class _FirstToken(BaseStreamer):
    def __init__(self) -> None:
        self.puts: list[float] = []

    def put(self, value) -> None:  # type: ignore[no-untyped-def]
        self.puts.append(time.perf_counter())

    def end(self) -> None:
        pass


class HfColumn:
    name = "HF generate (static batch)"

    def __init__(self, loaded, prompts: list[list[int]], new_tokens: int) -> None:  # type: ignore[no-untyped-def]
        self.model, self.prompts, self.n = loaded.model, prompts, new_tokens
        self.pad = loaded.engine.pad_token_id

    def _run(self, level: int, n: int) -> Cell:
        prompts = [self.prompts[i % len(self.prompts)] for i in range(level)]
        width = max(map(len, prompts))
        ids = torch.full((level, width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        clock = _FirstToken()
        t = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=self.pad,
                streamer=clock if level == 1 else None,
            )
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        took = time.perf_counter() - t
        assert out.shape[1] - width == n
        # The streamer takes batch 1 only: for a batch, the first token is the prefill's (timed alone).
        ttft = clock.puts[1] - t if len(clock.puts) > 1 else self._prefill_s(ids, mask)
        return Cell(level * n / took, [ttft] * level, [took] * level)

    def _prefill_s(self, ids: torch.Tensor, mask: torch.Tensor) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids.to(self.model.device),
                attention_mask=mask.to(self.model.device),
                max_new_tokens=1,
                do_sample=False,
                pad_token_id=self.pad,
            )
        return time.perf_counter() - t

    async def measure(self, level: int) -> Cell:
        return self._run(level, self.n)


# --- our engine alone ----------------------------------------------------------------------------
class EngineColumn:
    name = "engine alone"

    def __init__(self, engine, prompts: list[list[int]], new_tokens: int) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.prompts, self.n = engine, prompts, new_tokens

    async def measure(self, level: int) -> Cell:
        reqs = [
            GenerationRequest(self.prompts[i % len(self.prompts)], max_new_tokens=self.n, stop_token_ids=())
            for i in range(level)
        ]
        t, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(self.engine.generate(r) for r in reqs))
        took = time.perf_counter() - t
        return Cell(
            sum(r.completion_tokens for r in results) / took,
            [r.timings.first_token_s or 0.0 for r in results],
            [r.timings.total_s for r in results],
            sum(r.completion_tokens < self.n for r in results),
            {"engine (bench process)": time.process_time() - cpu},
            took,
        )


# --- our API (official SDK) ----------------------------------------------------------------------
class ApiColumn:
    """Runs through our API on `model`: `create_and_poll` for tok/s and latency, then a streamed
    pass (`runs.stream`) for time to first token."""

    def __init__(
        self,
        label: str,
        client: openai.AsyncOpenAI,
        model: str,
        new_tokens: int,
        long_poll: bool = True,
        stack_pid: int | None = None,
    ) -> None:
        self.name, self.client, self.model, self.n = label, client, model, new_tokens
        self.stack_pid = stack_pid  # profile: CPU seconds of the stack's processes per pass
        self.assistant_id = ""
        # Off: the helper's reads are sent as plain reads, so the server answers at once and the
        # SDK sleeps its default second between them (how every run was polled before api/run_wait.py).
        self.headers = {} if long_poll else {"X-Stainless-Poll-Helper": "false"}
        self.stream = long_poll  # TTFT does not depend on polling: measured once

    async def _threads(self, level: int) -> list[str]:
        out = []
        for i in range(level):
            t = await self.client.beta.threads.create(messages=[{"role": "user", "content": question(i)}])
            out.append(t.id)
        return out

    async def _polled(self, thread_id: str) -> tuple[int, float]:
        t = time.perf_counter()
        run = await self.client.beta.threads.runs.create_and_poll(
            thread_id=thread_id,
            assistant_id=self.assistant_id,
            max_completion_tokens=self.n,
            temperature=0,
            extra_headers=self.headers,
        )
        took = time.perf_counter() - t
        if run.status not in ("completed", "incomplete"):
            raise RuntimeError(f"run {run.id} ended {run.status}: {run.last_error}")
        return (run.usage.completion_tokens if run.usage else 0), took

    async def _streamed(self, thread_id: str) -> float:
        t = time.perf_counter()
        first = None
        async with self.client.beta.threads.runs.stream(
            thread_id=thread_id, assistant_id=self.assistant_id, max_completion_tokens=self.n, temperature=0
        ) as stream:
            async for event in stream:
                if first is None and event.event == "thread.message.delta":
                    first = time.perf_counter() - t
        return first if first is not None else float("nan")

    async def setup(self) -> None:
        a = await self.client.beta.assistants.create(
            model=self.model, instructions=INSTRUCTIONS, temperature=0
        )
        self.assistant_id = a.id
        await self._polled((await self._threads(1))[0])  # warm-up: model load, workflow caches

    async def measure(self, level: int) -> Cell:
        threads = await self._threads(level)
        before = cpu_by_role(self.stack_pid) if self.stack_pid else {}
        t, client_cpu = time.perf_counter(), time.process_time()
        done = await asyncio.gather(*(self._polled(th) for th in threads))
        took = time.perf_counter() - t
        cpu = cpu_delta(before, cpu_by_role(self.stack_pid)) if self.stack_pid else {}
        cpu["SDK client (bench process)"] = time.process_time() - client_cpu
        tokens = [n for n, _ in done]
        ttft: list[float] = []
        if self.stream:
            threads = await self._threads(level)
            ttft = list(await asyncio.gather(*(self._streamed(th) for th in threads)))
        return Cell(
            sum(tokens) / took, ttft, [s for _, s in done], sum(n < self.n for n in tokens), cpu, took
        )


# --- hook: more columns ----------------------------------------------------------------------------
def extra_columns(prompts: list[list[int]], new_tokens: int) -> list[Column]:
    """Columns from bench/bench_vllm.py (raw vLLM), if that script exists: it defines
    `columns(prompts: list[list[int]], new_tokens: int) -> list[Column]`."""
    path = ROOT / "bench" / "bench_vllm.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("bench_vllm", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return list(module.columns(prompts, new_tokens))


async def measure_all(columns: Sequence[Column], levels: list[int], report: Callable[[str], None]) -> None:
    # Level by level, every column back to back: on a shared machine whose load drifts, the
    # columns compared at one level see about the same load.
    results: dict[str, dict[int, Cell]] = {col.name: {} for col in columns}
    for level in levels:
        for col in columns:
            cell = await col.measure(level)
            results[col.name][level] = cell
            report(f"{col.name}, {level:>2} concurrent: {cell.text()}")
            if cell.cpu:
                parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cell.cpu.items(), key=lambda kv: -kv[1]))
                report(
                    f"  CPU seconds in that pass ({cell.wall:.1f} s wall, {os.cpu_count()} CPUs): "
                    f"{parts}; total {sum(cell.cpu.values()):.1f}"
                )
    report("table (aggregate tok/s; TTFT p50; latency p50 / p95):")
    header = "| | " + " | ".join(f"{lv} concurrent" for lv in levels) + " |"
    report(header)
    report("|---" * (len(levels) + 1) + "|")
    for name, cells in results.items():
        report(f"| {name} | " + " | ".join(cells[lv].text() for lv in levels) + " |")
    ref = results.get(EngineColumn.name)
    hf = results.get(HfColumn.name)
    for name, cells in results.items():
        if not name.startswith("API"):
            continue
        if hf and 1 in cells and 1 in hf:
            report(f"{name}, 1 run vs HF generate batch 1: {cells[1].tps / hf[1].tps:.0%} (target >= 95%)")
        for lv in levels:
            if ref and lv > 1 and lv in ref:
                report(
                    f"{name}, {lv} concurrent vs engine alone: {cells[lv].tps / ref[lv].tps:.0%}"
                    + (" (target >= 90%)" if lv == 8 else "")
                )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,8,16")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--api-models", default=MODEL, help="comma-separated model ids for API columns")
    parser.add_argument("--stack-env", action="append", default=[], help="KEY=VALUE for the stack")
    parser.add_argument(
        "--old-polling",
        action="store_true",
        help="add an API column polled without long polling (1 s sleeps)",
    )
    parser.add_argument("--with-vllm", action="store_true", help="add bench_vllm.py's columns")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's Assistants API warnings
    levels = [int(x) for x in args.concurrency.split(",")]
    n = args.new_tokens
    batch = max(levels + [16])
    lines = [f"machine before: {machine()}"]
    print(lines[0], flush=True)

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    loaded = ModelRegistry(Settings(max_batch_size=batch)).get(MODEL)
    prompts = [
        loaded.encode_chat(
            [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": question(i)}]
        )
        for i in range(len(SUBJECTS))
    ]
    report(
        f"model: {loaded.name} on {loaded.device} {loaded.model.dtype}, {n} new tokens, greedy, "
        f"prompts {min(map(len, prompts))}-{max(map(len, prompts))} tokens"
    )
    hf = HfColumn(loaded, prompts, n)
    engine = EngineColumn(loaded.engine, prompts, n)
    hf._run(1, 8)  # warm-up

    env = {"ASSISTANTS_MAX_BATCH_SIZE": str(batch)}
    env.update(kv.split("=", 1) for kv in args.stack_env)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with scratch_stack("assistants-bench-inference-", env=env) as stack:
        report(f"stack: `assistants up` started in {time.perf_counter() - t0:.0f}s")

        async def go() -> None:
            await engine.measure(1)  # warm-up
            client = openai.AsyncOpenAI(
                base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=600
            )
            api = [
                ApiColumn(f"API {m} (SDK)", client, m, n, stack_pid=stack.proc.pid)
                for m in args.api_models.split(",")
            ]
            if args.old_polling:
                api.append(ApiColumn(f"API {MODEL} (SDK, 1 s polling)", client, MODEL, n, long_poll=False))
            for col in api:
                await col.setup()
            columns: list[Column] = [hf, engine, *api]
            if args.with_vllm:
                columns += extra_columns(prompts, n)
            await measure_all(columns, levels, report)
            await client.close()

        asyncio.run(go())
    loaded.engine.close()
    report(f"machine after: {machine()}")
    if not args.no_write:
        append_results("bench_inference.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
