"""The API's metrics: requests by route template, and active runs and the ingestion backlog read
from Postgres at scrape time.

The middleware counts a request when its response starts (a stream's headers), so a long SSE
stream is counted once, at once; it holds `assistants_sse_streams_open` up while the stream lasts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistants import metrics
from assistants.db.pool import Pool as DbPool
from assistants.objects import ACTIVE_RUN_SQL, ACTIVE_RUN_STATUSES
from assistants.settings import Settings

UNMATCHED = "<unmatched>"  # no route (404s, bodies refused before routing): one label, not the raw path
SCRAPE_QUERY_TIMEOUT_S = 5.0


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        method = scope["method"]
        streaming = started = False

        async def send_counted(message: Message) -> None:
            nonlocal streaming, started
            if message["type"] == "http.response.start":
                started = True
                route = _route_template(scope)
                status = str(message["status"])
                metrics.HTTP_REQUESTS.labels(route, method, status).inc()
                metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - t0)
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    streaming = True
                    metrics.SSE_STREAMS_OPEN.inc()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            if not started:  # the server answers 500 outside this middleware
                metrics.HTTP_REQUESTS.labels(_route_template(scope), method, "500").inc()
            raise
        finally:
            if streaming:
                metrics.SSE_STREAMS_OPEN.dec()


def _route_template(scope: Scope) -> str:
    # Starlette's router writes the matched route into the (shared) scope before calling it.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


# Gauges of shared state, read from Postgres at each scrape: {name: (help, labels)}.
STATE_GAUGES = {
    "assistants_runs_active": ("Runs in an active status now (all projects), by status", ["status"]),
    "assistants_runs_oldest_active_seconds": (
        "Age of the oldest run in each active status (0 when none), by status",
        ["status"],
    ),
    "assistants_ingestion_backlog": ("Vector store files awaiting ingestion (in_progress) now", []),
    "assistants_ingestion_oldest_seconds": (
        "Age of the oldest vector store file awaiting ingestion (0 when none)",
        [],
    ),
}


async def read_state(conn: Any, now: float) -> dict[str, dict[tuple[str, ...], float]]:
    """Active runs per status and the ingestion backlog, each with its oldest item's age."""
    runs = await (
        await conn.execute(
            f"SELECT status, count(*) AS n, min(created_at) AS oldest FROM runs WHERE {ACTIVE_RUN_SQL}"
            " GROUP BY status"
        )
    ).fetchall()
    files = await (
        await conn.execute(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM vector_store_files"
            " WHERE status = 'in_progress'"
        )
    ).fetchone()
    active: dict[tuple[str, ...], float] = {(s,): 0.0 for s in ACTIVE_RUN_STATUSES}
    oldest = dict(active)
    for r in runs:
        active[(r["status"],)] = float(r["n"])
        oldest[(r["status"],)] = max(0.0, now - r["oldest"])
    return {
        "assistants_runs_active": active,
        "assistants_runs_oldest_active_seconds": oldest,
        "assistants_ingestion_backlog": {(): float(files["n"])},
        "assistants_ingestion_oldest_seconds": {
            (): 0.0 if files["oldest"] is None else max(0.0, now - files["oldest"])
        },
    }


def state_collector(pool: DbPool, loop: asyncio.AbstractEventLoop) -> metrics.GaugeCollector:
    """STATE_GAUGES, every active status included (0 when none), read when scraped.
    The scrape runs on the metrics server's thread; the queries run on the app's loop and pool."""

    async def query() -> dict[str, dict[tuple[str, ...], float]]:
        async with pool.connection() as conn:
            return await read_state(conn, time.time())

    def read() -> dict[str, dict[tuple[str, ...], float]]:
        future = asyncio.run_coroutine_threadsafe(query(), loop)
        try:
            return future.result(SCRAPE_QUERY_TIMEOUT_S)
        finally:
            future.cancel()  # no-op when done; a slow query does not outlive the scrape

    return metrics.GaugeCollector(STATE_GAUGES, read)


def start(pool: DbPool, host: str, port: int) -> Callable[[], None] | None:
    """Serve this API process's /metrics (with the state gauges); returns its stop.
    None when port is 0 (off)."""
    if not port:
        return None
    unregister = metrics.register(state_collector(pool, asyncio.get_running_loop()))
    stop_server = metrics.serve_metrics(host, port)

    def stop() -> None:
        if stop_server is not None:
            stop_server()
        unregister()

    return stop


def temporal_runtime(settings: Settings) -> None:
    """Temporal SDK metrics of this process's client, when ASSISTANTS_TEMPORAL_METRICS_PORT is set."""
    metrics.temporal_runtime(settings.metrics_host, settings.temporal_metrics_port)
