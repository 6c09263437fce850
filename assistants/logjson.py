"""Log lines of every process: text (default) or one JSON object a line (ASSISTANTS_LOG_FORMAT=json).

Within a run each line carries its ids: `run_id`, `thread_id`, `project_id`, `workflow_id`. They
come from a per-task context (`bind`), filled by the activity interceptor below from the
activity's input and by the API for run-scoped routes, and from Temporal's own context: the
activity's info (workflow id, activity type, attempt) or a workflow logger's `temporal_workflow`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RUN_KEYS = ("run_id", "thread_id", "project_id", "workflow_id")

# A mutable dict per request/activity, so ids bound later (or in a worker thread) reach every line.
_context: ContextVar[dict[str, Any] | None] = ContextVar("assistants_log_context", default=None)

log = logging.getLogger("assistants.activity")


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[dict[str, Any]]:
    """A fresh context for the duration (one request, one activity attempt)."""
    ctx = {k: v for k, v in ids.items() if v is not None}
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def bind(**ids: Any) -> None:
    """Add ids to the current context (no-op outside one)."""
    ctx = _context.get()
    if ctx is not None:
        ctx.update({k: v for k, v in ids.items() if v is not None})


def context_fields(record: logging.LogRecord | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if activity.in_activity():
        info = activity.info()
        out.update(workflow_id=info.workflow_id, activity=info.activity_type, attempt=info.attempt)
    wf = getattr(record, "temporal_workflow", None) if record is not None else None
    if isinstance(wf, dict) and wf.get("workflow_id"):
        out.update(workflow_id=wf["workflow_id"], workflow_type=wf.get("workflow_type"))
    out.update(_context.get() or {})
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        line.update(context_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """The root handler of this process (replaces any earlier one, e.g. basicConfig's)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if log_format == "json":
        logging.captureWarnings(True)  # warnings.warn() output becomes a JSON line too
        # Progress bars (transformers' weight loading) would be lines that are not JSON. Read when
        # huggingface_hub is imported, which the worker does after this, when it loads a model.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # Libraries that install their own stream handlers (uvicorn) go through the root one.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True


class _RunIdsInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        arg = input.args[0] if input.args else None
        ids = {k: getattr(arg, k, None) for k in ("run_id", "thread_id", "project_id")}
        started = time.monotonic()
        with log_context(**ids):
            try:
                result = await self.next.execute_activity(input)
            except BaseException as e:
                log.warning("activity failed after %.3fs: %r", time.monotonic() - started, e)
                raise
            log.info("activity finished in %.3fs", time.monotonic() - started)
            return result


class RunLogContext(Interceptor):
    """Worker interceptor: each activity attempt logs within its run's ids, and one line when it ends."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RunIdsInbound(next)
