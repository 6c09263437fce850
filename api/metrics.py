"""The API's metrics: requests by route template, and active runs read from Postgres at scrape time.

The middleware counts a request when its response starts (a stream's headers), so a long SSE
stream is counted once, at once; it holds `assistants_sse_streams_open` up while the stream lasts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistants import metrics
from assistants.db.pool import Pool as DbPool
from assistants.objects import ACTIVE_RUN_STATUSES
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


def active_runs_collector(pool: DbPool, loop: asyncio.AbstractEventLoop) -> metrics.GaugeCollector:
    """`assistants_runs_active{status}`: every active status, 0 included, read when scraped.
    The scrape runs on the metrics server's thread; the query runs on the app's loop and pool."""

    async def query() -> dict[tuple[str, ...], float]:
        async with pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT status, count(*) AS n FROM runs WHERE status = ANY(%s) GROUP BY status",
                    (list(ACTIVE_RUN_STATUSES),),
                )
            ).fetchall()
        counts: dict[tuple[str, ...], float] = {(s,): 0.0 for s in ACTIVE_RUN_STATUSES}
        counts.update({(r["status"],): float(r["n"]) for r in rows})
        return counts

    def read() -> dict[str, dict[tuple[str, ...], float]]:
        future = asyncio.run_coroutine_threadsafe(query(), loop)
        try:
            return {"assistants_runs_active": future.result(SCRAPE_QUERY_TIMEOUT_S)}
        finally:
            future.cancel()  # no-op when done; a slow query does not outlive the scrape

    return metrics.GaugeCollector(
        {"assistants_runs_active": ("Runs in an active status now (all projects), by status", ["status"])},
        read,
    )


def start(pool: DbPool, host: str, port: int) -> Callable[[], None] | None:
    """Serve this API process's /metrics (with the active-runs gauge); returns its stop.
    None when port is 0 (off)."""
    if not port:
        return None
    unregister = metrics.register(active_runs_collector(pool, asyncio.get_running_loop()))
    stop_server = metrics.serve_metrics(host, port)

    def stop() -> None:
        if stop_server is not None:
            stop_server()
        unregister()

    return stop


def temporal_runtime(settings: Settings) -> None:
    """Temporal SDK metrics of this process's client, when ASSISTANTS_TEMPORAL_METRICS_PORT is set."""
    metrics.temporal_runtime(settings.metrics_host, settings.temporal_metrics_port)
