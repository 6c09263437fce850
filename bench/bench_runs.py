"""Generation through runs: the real stack (`assistants up`), the official `openai` SDK, greedy.

Prints the machine, then
  - single-run tokens/s through a run vs. raw `model.generate` on the same prompt and settings in
    this process (the ratio is the orchestration cost),
  - aggregate tokens/s and p50/p95 run latency with 1, 4, 8 and 16 concurrent runs,
  - run overhead: POST /runs -> first token and last token -> completed, model time subtracted.

Timings come from the run event log (`run_events.created_at`, one Postgres clock), not from
polling. Model-side tokens/s of a run is (completion_tokens - 1) / (last delta - first delta):
decode time only, as is the raw figure it is compared with (first to last streamed token).
Deltas are coalesced every 50 ms, so each end of that span is late by up to 50 ms, which is
<1% of a 256-token generation. Appends a dated section to bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_runs.py [--single-tokens 256] [--tokens 128] [--concurrency 1,4,8,16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import openai
import psycopg
import torch
from _common import append_results, machine, pct, scratch_stack
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.streamers import BaseStreamer

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
TERMINAL = (
    "thread.run.completed",
    "thread.run.incomplete",
    "thread.run.failed",
    "thread.run.cancelled",
    "thread.run.expired",
)


def prompt(i: int = 0) -> str:
    return (
        f"Write a long, detailed story about {SUBJECTS[i % len(SUBJECTS)]} who finds a message in a bottle. "
        "Use at least six paragraphs."
    )


@dataclass
class RunTiming:
    run_id: str
    status: str
    tokens: int
    created: datetime
    first_delta: datetime
    last_delta: datetime
    terminal: datetime

    @property
    def latency(self) -> float:
        return (self.terminal - self.created).total_seconds()

    @property
    def decode_s(self) -> float:
        return (self.last_delta - self.first_delta).total_seconds()

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else float("nan")


# --- raw transformers -------------------------------------------------------------------------
class _Clock(BaseStreamer):
    """Records when each batch of tokens reaches the streamer (the first put is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value) -> None:  # type: ignore[no-untyped-def]
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


@dataclass
class RawTiming:
    tokens: int
    ttft_s: float  # prefill + first token
    decode_tps: float  # (tokens - 1) / (last token - first token)
    total_tps: float  # tokens / whole generate call


class RawModel:
    def __init__(self, path: Path) -> None:
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        vocab = self.tok.get_vocab()
        eos = self.model.generation_config.eos_token_id
        stop = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        stop |= {self.tok.eos_token_id} | {vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab}
        self.stop = sorted(i for i in stop if i is not None)  # what the engine stops on too

    def generate(self, text: str, max_new: int) -> RawTiming:
        messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}]
        encoded = self.tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        ids = torch.tensor([list(encoded["input_ids"] if isinstance(encoded, dict) else encoded)])
        clock = _Clock()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new,
                do_sample=False,
                eos_token_id=self.stop,
                pad_token_id=self.stop[0],
                streamer=clock,
            )
        t1 = time.perf_counter()
        n = out.shape[1] - ids.shape[1]
        token_times = clock.times[1:]
        return RawTiming(n, token_times[0] - t0, (n - 1) / (token_times[-1] - token_times[0]), n / (t1 - t0))


# --- through the API --------------------------------------------------------------------------
class Runs:
    def __init__(self, client: openai.OpenAI, database_url: str, assistant_id: str) -> None:
        self.client, self.database_url, self.assistant_id = client, database_url, assistant_id

    def threads(self, n: int, offset: int = 0) -> list[str]:
        return [
            self.client.beta.threads.create(messages=[{"role": "user", "content": prompt(offset + i)}]).id
            for i in range(n)
        ]

    def run_all(self, thread_ids: list[str], max_tokens: int) -> list[RunTiming]:
        """POST one run per thread at once; wait on the event log; return their timings."""
        with ThreadPoolExecutor(max(1, len(thread_ids))) as pool:
            runs = list(
                pool.map(
                    lambda t: self.client.beta.threads.runs.create(
                        t, assistant_id=self.assistant_id, max_completion_tokens=max_tokens, temperature=0
                    ),
                    thread_ids,
                )
            )
        ids = [r.id for r in runs]
        events = self._wait(ids, timeout=600)
        out = []
        for run in runs:
            final = self.client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
            ev = events[run.id]
            deltas = [t for e, t in ev if e == "thread.message.delta"]
            if not deltas:
                raise RuntimeError(f"run {run.id} ended {final.status} without tokens: {final.last_error}")
            out.append(
                RunTiming(
                    run.id,
                    final.status,
                    final.usage.completion_tokens if final.usage else 0,
                    created=next(t for e, t in ev if e == "thread.run.created"),
                    first_delta=deltas[0],
                    last_delta=deltas[-1],
                    terminal=next(t for e, t in ev if e in TERMINAL),
                )
            )
        return out

    def _wait(self, run_ids: list[str], timeout: float) -> dict[str, list[tuple[str, datetime]]]:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT count(DISTINCT run_id) FROM run_events WHERE run_id = ANY(%s) AND event = ANY(%s)",
                    (run_ids, list(TERMINAL)),
                ).fetchone()
                if done and done[0] == len(run_ids):
                    rows = conn.execute(
                        "SELECT run_id, event, created_at FROM run_events WHERE run_id = ANY(%s)"
                        " AND NOT discarded ORDER BY seq",
                        (run_ids,),
                    ).fetchall()
                    events: dict[str, list[tuple[str, datetime]]] = {r: [] for r in run_ids}
                    for run_id, event, created_at in rows:
                        events[run_id].append((event, created_at))
                    return events
                time.sleep(0.2)
        raise TimeoutError(f"runs not finished after {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--single-tokens", type=int, default=256, help="max_completion_tokens of the single-run comparison"
    )
    parser.add_argument(
        "--tokens", type=int, default=128, help="max_completion_tokens of each concurrent run"
    )
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--repeat", type=int, default=2, help="single-run and raw repetitions (median)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    t_start = time.perf_counter()
    try:
        measure(args, levels, report, t_start)
    finally:
        # Also when stopped early (run_all's timeout): what was measured is kept, marked as such.
        if not args.no_write and lines:
            if not any(line.startswith("bench_runs.py took") for line in lines):
                lines.append(
                    "INCOMPLETE: stopped before the end (timeout or error); the lines above are all it measured"
                )
            append_results("bench_runs.py", lines)
    return 0


def measure(
    args: argparse.Namespace, levels: list[int], report: Callable[[str], None], t_start: float
) -> None:
    with scratch_stack(
        "assistants-bench-runs-", env={"ASSISTANTS_MAX_BATCH_SIZE": str(max(levels + [16]))}
    ) as stack:
        report(f"machine: {machine()}")
        report(
            f"stack: `assistants up` (embedded Postgres + Temporal dev server, 1 runs worker, 1 inference worker, "
            f"1 API process) started in {time.perf_counter() - t_start:.0f}s; model {MODEL}, greedy"
        )
        client = openai.OpenAI(
            base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=600
        )
        assistant = client.beta.assistants.create(model=MODEL, instructions=INSTRUCTIONS, temperature=0)
        runs = Runs(client, stack.database_url, assistant.id)
        raw = RawModel((stack.data_dir / "models" / MODEL).resolve())

        # Warm both paths (first-call allocations, the worker's first batch).
        raw.generate(prompt(), 8)
        runs.run_all(runs.threads(1), 8)

        # Single run vs raw generate, interleaved so background load hits both alike.
        api_single: list[RunTiming] = []
        raw_single: list[RawTiming] = []
        for rep in range(args.repeat):
            raw_single.append(raw.generate(prompt(), args.single_tokens))
            api_single += runs.run_all(runs.threads(1), args.single_tokens)
            print(
                f"  (repetition {rep + 1}: raw {raw_single[-1].decode_tps:.1f} tok/s, "
                f"run {api_single[-1].decode_tps:.1f} tok/s)",
                flush=True,
            )
        raw_tps = statistics.median(r.decode_tps for r in raw_single)
        api_tps = statistics.median(r.decode_tps for r in api_single)
        report(
            f"raw model.generate, batch 1, {raw_single[0].tokens} tokens: {raw_tps:.1f} tok/s decode "
            f"({statistics.median(r.total_tps for r in raw_single):.1f} tok/s incl. prefill; "
            f"first token after {statistics.median(r.ttft_s for r in raw_single) * 1000:.0f} ms)"
        )
        report(
            f"single run through the API, {api_single[0].tokens} tokens ({api_single[0].status}): "
            f"{api_tps:.1f} tok/s decode = {api_tps / raw_tps:.0%} of raw (target >= 90%: "
            f"{'met' if api_tps >= 0.9 * raw_tps else 'MISSED'})"
        )
        raw_ttft = statistics.median(r.ttft_s for r in raw_single)
        ttft = statistics.median((r.first_delta - r.created).total_seconds() for r in api_single)
        tail = statistics.median((r.terminal - r.last_delta).total_seconds() for r in api_single)
        report(
            f"run overhead (single run, median): POST /runs -> first token {ttft * 1000:.0f} ms "
            f"({(ttft - raw_ttft) * 1000:.0f} ms after subtracting the model's {raw_ttft * 1000:.0f} ms to first token; "
            f"includes up to 50 ms delta coalescing); last token -> completed {tail * 1000:.0f} ms"
        )

        # Aggregate throughput at each concurrency level.
        by_level: dict[int, tuple[float, float]] = {}
        for i, c in enumerate(levels):
            timings = runs.run_all(runs.threads(c, offset=i), args.tokens)
            tokens = sum(t.tokens for t in timings)
            wall = (max(t.terminal for t in timings) - min(t.created for t in timings)).total_seconds()
            decode = (
                max(t.last_delta for t in timings) - min(t.first_delta for t in timings)
            ).total_seconds()
            lat = [t.latency for t in timings]
            by_level[c] = (tokens / wall, tokens / decode)
            report(
                f"{c:>2} concurrent runs x {args.tokens} max tokens: {tokens / wall:6.1f} tok/s aggregate end to end "
                f"(POST to last completed), {tokens / decode:6.1f} tok/s first-to-last token; "
                f"run latency p50 {pct(lat, 0.5):.2f} s p95 {pct(lat, 0.95):.2f} s; "
                f"TTFT p50 {pct([(t.first_delta - t.created).total_seconds() for t in timings], 0.5):.2f} s"
            )
        if 1 in by_level and 8 in by_level:
            e2e, dec = (by_level[8][k] / by_level[1][k] for k in (0, 1))
            report(
                f"8 concurrent vs 1: {e2e:.1f}x end to end, {dec:.1f}x first-to-last token "
                f"(target >= 3x: {'met' if e2e >= 3 else 'MISSED'})"
            )
        report(f"bench_runs.py took {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
