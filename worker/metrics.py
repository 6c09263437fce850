"""A worker's metrics: activity attempts and failures (an interceptor on every worker of the
process), and gauges read at scrape time: the inference engines' batch and KV cache, the runs
worker's sandbox sessions."""

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
            "assistants_engine_kv_cache_bytes": {},
        }
        for name in registry.loaded():
            stats = registry.get(name).engine.stats()
            out["assistants_engine_batch_size"][(name,)] = stats["running"]
            out["assistants_engine_waiting_requests"][(name,)] = stats["waiting"]
            out["assistants_engine_max_batch_size"][(name,)] = stats["max_batch_size"]
            out["assistants_engine_kv_cache_bytes"][(name,)] = stats["kv_cache_bytes"]
        return out

    return metrics.GaugeCollector(
        {
            "assistants_engine_batch_size": ("Sequences in the engine's running batch now", ["model"]),
            "assistants_engine_waiting_requests": ("Requests queued for the engine's batch now", ["model"]),
            "assistants_engine_max_batch_size": ("The engine's batch size limit", ["model"]),
            "assistants_engine_kv_cache_bytes": (
                "Bytes of keys and values held by the engine's batch cache now",
                ["model"],
            ),
        },
        read,
    )


def sandbox_collector(sessions: Any) -> metrics.GaugeCollector:
    """`assistants_sandbox_sessions_open` and `_max` of this runs worker (SandboxSessions)."""

    def read() -> dict[str, dict[tuple[str, ...], float]]:
        return {
            "assistants_sandbox_sessions_open": {(): sessions.open_count()},
            "assistants_sandbox_sessions_max": {(): sessions.max_sessions},
        }

    return metrics.GaugeCollector(
        {
            "assistants_sandbox_sessions_open": ("Code-interpreter sandboxes this worker holds open now", []),
            "assistants_sandbox_sessions_max": (
                "This worker's sandbox limit (ASSISTANTS_SANDBOX_MAX_SESSIONS)",
                [],
            ),
        },
        read,
    )
