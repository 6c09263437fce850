"""API latency and throughput without the model: create-message and list-messages.

Starts the real stack (`assistants up`), then drives it with an httpx async client at 1 and 50
concurrent clients, each client on its own thread. Prints p50/p99 latency and requests/s per
endpoint and level, and the machine; appends to bench/RESULTS.md unless --no-write. The client
runs on the same machine as the server (one API process), so at high concurrency it competes
with the server for the CPUs: the numbers are a floor for the API alone.

    .venv/bin/python bench/bench_api.py [--concurrency 1,50] [--requests 150]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from _common import append_results, machine, pct, scratch_stack

Op = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


async def create_message(http: httpx.AsyncClient, thread_id: str) -> httpx.Response:
    return await http.post(
        f"threads/{thread_id}/messages", json={"role": "user", "content": "How far is the moon?"}
    )


async def list_messages(http: httpx.AsyncClient, thread_id: str) -> httpx.Response:
    return await http.get(f"threads/{thread_id}/messages", params={"limit": 20})


async def drive(
    http: httpx.AsyncClient, op: Op, thread_ids: list[str], per_client: int
) -> tuple[list[float], float, list[str]]:
    """Each client sends `per_client` requests back to back; returns latencies (s) of the
    successful ones, the wall time, and the failures (counted and reported, never retried)."""
    latencies: list[float] = []
    errors: list[str] = []

    async def client(thread_id: str) -> None:
        for _ in range(per_client):
            t = time.perf_counter()
            try:
                resp = await op(http, thread_id)
            except httpx.TransportError as exc:
                errors.append(type(exc).__name__)
                continue
            if resp.is_success:
                latencies.append(time.perf_counter() - t)
            else:
                errors.append(f"HTTP {resp.status_code}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client(t) for t in thread_ids))
    return latencies, time.perf_counter() - t0, errors


async def bench(
    base_url: str, key: str, levels: list[int], requests: int, report: Callable[[str], None]
) -> None:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=max(levels) + 10, max_keepalive_connections=max(levels) + 10)
    async with httpx.AsyncClient(base_url=base_url + "/", headers=headers, limits=limits, timeout=60) as http:
        threads = []
        for _ in range(max(levels)):
            resp = await http.post("threads", json={})
            resp.raise_for_status()
            threads.append(resp.json()["id"])
        await drive(http, create_message, threads[:1], 20)  # warm-up (connections, caches)
        for c in levels:
            per_client = max(requests // c, 10 if c > 1 else 1)
            for name, op in (("create-message", create_message), ("list-messages", list_messages)):
                lat, wall, errors = await drive(http, op, threads[:c], per_client)
                failed = f", {len(errors)} FAILED ({', '.join(sorted(set(errors)))})" if errors else ""
                report(
                    f"{name:<14} {c:>2} concurrent clients: p50 {pct(lat, 0.5) * 1000:6.1f} ms, "
                    f"p99 {pct(lat, 0.99) * 1000:6.1f} ms, {len(lat) / wall:6.1f} req/s ({len(lat)} ok{failed})"
                )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,50")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per endpoint and level (at least 10 per client)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    t_start = time.perf_counter()
    with scratch_stack("assistants-bench-api-") as stack:
        report(f"machine: {machine()}")
        report(
            "stack: `assistants up`, one API process (uvicorn, 1 worker); client: httpx async, same machine"
        )
        asyncio.run(bench(stack.base_url, stack.create_key(), levels, args.requests, report))
        report(f"bench_api.py took {time.perf_counter() - t_start:.0f}s")
    if not args.no_write:
        append_results("bench_api.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
