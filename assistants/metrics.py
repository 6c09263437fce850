"""Prometheus metrics of every process (issue 17). Names are documented in README "Metrics".

Each process (API, runs worker, inference worker) serves its own `/metrics` on
`ASSISTANTS_METRICS_HOST:ASSISTANTS_METRICS_PORT` (0 = off), never on the API's public port.
Counters are per process: Prometheus sums them across processes and replicas. Gauges that
describe shared state (active runs, ingestion backlog) are read from Postgres at scrape time, by
the API only (every replica reports the same value: take their max, not their sum).

Workflow code never records a metric (it replays): activities and the API do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# No `*_created` series: Prometheus does not use them, and they double every counter's series.
disable_created_metrics()

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_TPS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

# --- API ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "assistants_http_requests",
    "HTTP requests answered, by route template, method and status (counted when the response starts)",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "assistants_http_request_duration_seconds",
    "Time from request to response start (headers), by route template and method",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
SSE_STREAMS_OPEN = Gauge("assistants_sse_streams_open", "Server-sent event streams open now")
RUNS_STARTED = Counter(
    "assistants_runs_started", "Runs created (Assistants and Responses), by model", ["model"]
)

# --- runs (whoever ends a run: runs worker, API cancel, reconciler) ----------------------------
RUNS_FINISHED = Counter(
    "assistants_runs_finished",
    "Runs that reached a terminal status, by status and model",
    ["status", "model"],
)
RUN_DURATION = Histogram(
    "assistants_run_duration_seconds",
    "Run creation to terminal status, by status and model",
    ["status", "model"],
    buckets=_RUN_BUCKETS,
)

# --- inference worker --------------------------------------------------------------------------
TIME_TO_FIRST_TOKEN = Histogram(
    "assistants_time_to_first_token_seconds",
    "Request to first generated token of a turn's free generation (local engine or remote), by model",
    ["model"],
    buckets=_TTFT_BUCKETS,
)
OUTPUT_TOKENS_PER_SECOND = Histogram(
    "assistants_output_tokens_per_second",
    "Decode rate of a turn's free generation after its first token, by model",
    ["model"],
    buckets=_TPS_BUCKETS,
)
OUTPUT_TOKENS = Counter(
    "assistants_output_tokens", "Tokens generated in turns (local engine or remote), by model", ["model"]
)

# --- every worker ------------------------------------------------------------------------------
ACTIVITY_ATTEMPTS = Counter(
    "assistants_activity_attempts", "Activity executions started (each retry counts), by type", ["activity"]
)
ACTIVITY_FAILURES = Counter(
    "assistants_activity_failures",
    "Activity executions that raised, by type and error",
    ["activity", "error"],
)
ACTIVITY_DURATION = Histogram(
    "assistants_activity_duration_seconds",
    "Duration of one activity execution, by type",
    ["activity"],
    buckets=_LATENCY_BUCKETS + (60, 300),
)


def observe_run_finished(run: dict[str, Any], status: str) -> None:
    """A run moved to `status` (terminal) just now; `run` is its object as stored."""
    model = str(run.get("model") or "")
    RUNS_FINISHED.labels(status, model).inc()
    created = run.get("created_at")
    if isinstance(created, int | float):
        RUN_DURATION.labels(status, model).observe(max(0.0, time.time() - created))


def observe_generation(model: str, first_token_s: float | None, total_s: float, tokens: int) -> None:
    """One engine generation: time to its first token and its decode rate after it."""
    OUTPUT_TOKENS.labels(model).inc(tokens)
    if first_token_s is None:
        return
    TIME_TO_FIRST_TOKEN.labels(model).observe(first_token_s)
    decode_s = total_s - first_token_s
    if tokens > 1 and decode_s > 0:
        OUTPUT_TOKENS_PER_SECOND.labels(model).observe((tokens - 1) / decode_s)


class GaugeCollector(Collector):
    """Gauges computed at scrape time by `read`: {(label values...): value} per metric name."""

    def __init__(
        self,
        families: dict[str, tuple[str, list[str]]],
        read: Callable[[], dict[str, dict[tuple[str, ...], float]]],
    ) -> None:
        self.families, self.read = families, read

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily(n, doc, labels=labels) for n, (doc, labels) in self.families.items()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            values = self.read()
        except Exception:  # a failed read leaves the gauges out of this scrape, never the others
            log.warning("reading gauges %s failed", list(self.families), exc_info=True)
            return []
        out = []
        for name, (doc, labels) in self.families.items():
            family = GaugeMetricFamily(name, doc, labels=labels)
            for key, value in values.get(name, {}).items():
                family.add_metric(list(key), value)
            out.append(family)
        return out


def register(collector: Collector) -> Callable[[], None]:
    """Add a collector to this process's registry; returns its removal."""
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


def serve_metrics(host: str, port: int) -> Callable[[], None] | None:
    """Serve /metrics of this process on host:port in a thread; None when port is 0 (off)."""
    if not port:
        return None
    server, thread = start_http_server(port, addr=host)
    log.info("metrics on http://%s:%s/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


def temporal_runtime(host: str, port: int) -> None:
    """Temporal SDK metrics on their own Prometheus endpoint: set as the default runtime, so
    every client this process connects afterwards reports to it. No-op when port is 0."""
    if not port:
        return
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
    Runtime.set_default(runtime, error_if_already_set=False)
    log.info("temporal sdk metrics on http://%s:%s/metrics", host, port)
