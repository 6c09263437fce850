"""GET /health: 200 only when Postgres, Temporal and a worker on every task queue are ready."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

router = APIRouter(tags=["health"])


async def _postgres(request: Request) -> str:
    async with request.app.state.pool.connection() as conn:
        await conn.execute("SELECT 1")
    return "ok"


async def _pollers(request: Request, queue: str, kind: TaskQueueType.ValueType) -> int:
    settings = request.app.state.settings
    resp = await request.app.state.temporal.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        ),
        timeout=timedelta(seconds=3),
    )
    return len(resp.pollers)


async def _check(coro: Any) -> tuple[bool, Any]:
    try:
        return True, await asyncio.wait_for(coro, timeout=5)
    except Exception as exc:  # noqa: BLE001 - health reports every failure as "not ready"
        return False, f"error: {exc.__class__.__name__}: {exc}"[:300]


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    pg_ok, pg = await _check(_postgres(request))
    runs_ok, runs = await _check(
        _pollers(request, settings.runs_task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    )
    inf_ok, inf = await _check(
        _pollers(request, settings.inference_task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    )
    temporal_ok = runs_ok or inf_ok
    workers = {
        settings.runs_task_queue: {"ready": runs_ok and runs > 0, "pollers": runs if runs_ok else 0},
        settings.inference_task_queue: {"ready": inf_ok and inf > 0, "pollers": inf if inf_ok else 0},
    }
    ready = pg_ok and temporal_ok and all(w["ready"] for w in workers.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "postgres": {"ready": pg_ok, "detail": pg},
        "temporal": {
            "ready": temporal_ok,
            "address": settings.temporal_address,
            "detail": "ok" if temporal_ok else (runs if not runs_ok else inf),
        },
        "workers": workers,
        "temporal_ui": settings.temporal_ui_url,
        "temporal_namespace": settings.temporal_namespace,
    }
    return JSONResponse(status_code=200 if ready else 503, content=body)
