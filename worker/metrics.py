"""A worker's metrics: activity attempts and failures (an interceptor on every worker of the
process), and the inference engines' batch gauges, read at scrape time."""

from __future__ import annotations

import time
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from assistants import metrics


class ActivityMetrics(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        metrics.ACTIVITY_ATTEMPTS.labels(name).inc()
        t0 = time.perf_counter()
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            metrics.ACTIVITY_FAILURES.labels(name, type(exc).__name__).inc()
            raise
        finally:
            metrics.ACTIVITY_DURATION.labels(name).observe(time.perf_counter() - t0)


def engine_collector(registry: Any) -> metrics.GaugeCollector:
    """`assistants_engine_*{model}` of every model this process has loaded (Engine.stats())."""

    def read() -> dict[str, dict[tuple[str, ...], float]]:
        out: dict[str, dict[tuple[str, ...], float]] = {
            "assistants_engine_batch_size": {},
            "assistants_engine_waiting_requests": {},
            "assistants_engine_max_batch_size": {},
        }
        for name in registry.loaded():
            stats = registry.get(name).engine.stats()
            out["assistants_engine_batch_size"][(name,)] = stats["running"]
            out["assistants_engine_waiting_requests"][(name,)] = stats["waiting"]
            out["assistants_engine_max_batch_size"][(name,)] = stats["max_batch_size"]
        return out

    return metrics.GaugeCollector(
        {
            "assistants_engine_batch_size": ("Sequences in the engine's running batch now", ["model"]),
            "assistants_engine_waiting_requests": ("Requests queued for the engine's batch now", ["model"]),
            "assistants_engine_max_batch_size": ("The engine's batch size limit", ["model"]),
        },
        read,
    )
