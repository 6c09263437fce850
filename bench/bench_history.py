"""Workflow history size and run latency against thread size, side by side.

A run's history must carry ids and counts only, so its size stays flat however large the thread
grows (Temporal refuses any payload over 2 MiB, which once wedged runs on threads of a few MB).
Starts the real stack, fills threads of about 10 KB, 1 MB and 20 MB (messages of up to 256k
characters, OpenAI's limit), runs the same short answer on each through the official SDK, and
prints the history's bytes (`fetch_history().to_json()`) and the run's wall time per size;
appends to bench/RESULTS.md unless --no-write.

    .venv/bin/python bench/bench_history.py [--sizes-mb 0.01,1,20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import warnings

import httpx
import openai
from _common import append_results, machine, scratch_stack

from tests.stackutil import StackHandle

MESSAGE_CHARS = 256_000
# The SDK marks the Assistants API deprecated; that is the API this server exists to serve.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def fill(client: openai.OpenAI, thread_id: str, chars: int) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * (MESSAGE_CHARS // 45 + 1)
    while chars > 0:
        n = min(chars, MESSAGE_CHARS)
        client.beta.threads.messages.create(thread_id, role="user", content=text[:n])
        chars -= n
    client.beta.threads.messages.create(thread_id, role="user", content="Say hello.")


async def history_bytes(stack: StackHandle, namespace: str, run_id: str) -> int:
    c = await stack.temporal(namespace)  # with the stack's payload codec
    return len((await c.get_workflow_handle(run_id).fetch_history()).to_json())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", default="0.01,1,20")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = [float(x) for x in args.sizes_mb.split(",")]
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    t_start = time.perf_counter()
    with scratch_stack("assistants-bench-history-") as stack:
        report(f"machine: {machine()}")
        client = openai.OpenAI(
            base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=300
        )
        ns = httpx.get(stack.api_url + "/health").json()["temporal_namespace"]
        asst = client.beta.assistants.create(
            model="smollm2-135m-instruct", temperature=0, instructions="Be brief."
        )
        report(f"{'thread':>10} | {'run status':>10} | {'run wall s':>10} | {'history bytes':>13}")
        for mb in sizes:
            thread = client.beta.threads.create()
            fill(client, thread.id, int(mb * 1_000_000))
            t = time.perf_counter()
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=16, poll_interval_ms=200
            )
            wall = time.perf_counter() - t
            size = asyncio.run(history_bytes(stack, ns, run.id))
            report(f"{mb:>8g}MB | {run.status:>10} | {wall:>10.1f} | {size:>13,}")
        report(f"bench_history.py took {time.perf_counter() - t_start:.0f}s")
    if not args.no_write:
        append_results("bench_history.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
