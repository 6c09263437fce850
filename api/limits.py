"""Per-project quotas and rate limits: requests per minute, concurrent active runs, stored bytes.

Counters live in Postgres, never in process memory, so every API replica sees the same count.
Over a limit is a 429 in the OpenAI envelope with the headers the SDKs read: `retry-after`
(and `retry-after-ms`) and `x-ratelimit-{limit,remaining,reset}-requests`. A limit of 0 is off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import envelope
from assistants.db.pool import Pool as DbPool
from assistants.objects import ACTIVE_RUN_SQL
from assistants.settings import Settings

# Waiting does not free a run slot at a known time: this is a hint, not a promise.
ACTIVE_RUNS_RETRY_AFTER_SECONDS = 5

# One row per project: the current fixed one-minute window (database clock) and its count.
_COUNT_REQUEST = """
INSERT INTO rate_limits (project_id, window_start, requests)
VALUES (%(project)s, floor(extract(epoch FROM clock_timestamp()) / 60)::bigint * 60, 1)
ON CONFLICT (project_id) DO UPDATE SET
    requests = CASE WHEN rate_limits.window_start = EXCLUDED.window_start
                    THEN rate_limits.requests + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start
RETURNING requests, window_start + 60 - extract(epoch FROM clock_timestamp())::float8 AS reset_seconds
"""
_ACTIVE_RUNS = f"SELECT count(*) AS n FROM runs WHERE project_id = %s AND {ACTIVE_RUN_SQL}"
# Files, and the parts of uploads not yet completed (they hold storage until then).
_STORED_BYTES = (
    "SELECT (SELECT coalesce(sum((data->>'bytes')::bigint), 0) FROM files WHERE project_id = %(p)s)"
    " + (SELECT coalesce(sum(bytes), 0) FROM upload_parts WHERE project_id = %(p)s) AS n"
)
# Serialises check-then-insert per project and resource across replicas (held to commit).
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"


def _duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `17s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60}s"


@dataclass(frozen=True)
class RequestWindow:
    limit: int
    used: int
    reset_seconds: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": _duration(self.reset_seconds),
        }


class RateLimited(Exception):
    """A 429. `type`/`code` as OpenAI sends them: ("requests", "rate_limit_exceeded") for a rate,
    ("insufficient_quota", "insufficient_quota") for a spent quota that waiting does not refill."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        type: str = "requests",
        code: str = "rate_limit_exceeded",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.type, self.code = message, type, code
        self.headers = dict(headers or {})
        if retry_after is None:
            self.headers["x-should-retry"] = "false"  # the SDKs would otherwise retry a 429
        else:
            self.headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            self.headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))

    def response(self) -> JSONResponse:
        return envelope(429, self.message, self.type, code=self.code, headers=self.headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return exc.response()


async def count_request(pool: DbPool, settings: Settings, project: str) -> RequestWindow | None:
    """Count one request against the project's per-minute limit; raise RateLimited over it."""
    limit = settings.project_requests_per_minute
    if limit <= 0:
        return None
    async with pool.connection() as conn:
        row: Any = await (await conn.execute(_COUNT_REQUEST, {"project": project})).fetchone()
    window = RequestWindow(limit, int(row["requests"]), max(0.0, float(row["reset_seconds"])))
    if window.used > limit:
        raise RateLimited(
            f"Rate limit reached for project {project} on requests per min (RPM): Limit {limit}, "
            f"Used {limit}, Requested 1. Please try again in {_duration(window.reset_seconds)}.",
            retry_after=window.reset_seconds,
            headers=window.headers(),
        )
    return window


def _too_many_runs(project: str, limit: int) -> RateLimited:
    return RateLimited(
        f"Too many active runs for project {project}: Limit {limit}. Wait for a run to finish, "
        "or cancel one, and try again.",
        retry_after=ACTIVE_RUNS_RETRY_AFTER_SECONDS,
    )


async def check_active_runs(pool: DbPool, settings: Settings, project: str) -> None:
    """Early refusal before work that precedes the run row (e.g. creating its thread)."""
    limit = settings.project_max_active_runs
    if limit <= 0:
        return
    async with pool.connection() as conn:
        row: Any = await (await conn.execute(_ACTIVE_RUNS, (project,))).fetchone()
    if int(row["n"]) >= limit:
        raise _too_many_runs(project, limit)


async def reserve_active_run(conn: Any, settings: Settings, project: str) -> None:
    """Inside the transaction that inserts a run: lock the project's run count, then check it."""
    limit = settings.project_max_active_runs
    if limit <= 0:
        return
    await conn.execute(_LOCK, (f"assistants.active_runs:{project}",))
    row: Any = await (await conn.execute(_ACTIVE_RUNS, (project,))).fetchone()
    if int(row["n"]) >= limit:
        raise _too_many_runs(project, limit)


def _storage_full(project: str, limit: int) -> RateLimited:
    return RateLimited(
        f"You exceeded the storage quota of project {project}: {limit} bytes of files and upload parts. "
        "Delete files to free space.",
        retry_after=None,
        type="insufficient_quota",
        code="insufficient_quota",
    )


async def stored_bytes_left(pool: DbPool, settings: Settings, project: str) -> int | None:
    """Bytes the project may still store (None: no quota); raise RateLimited when none are left."""
    limit = settings.project_max_stored_bytes
    if limit <= 0:
        return None
    async with pool.connection() as conn:
        row: Any = await (await conn.execute(_STORED_BYTES, {"p": project})).fetchone()
    left = limit - int(row["n"])
    if left <= 0:
        raise _storage_full(project, limit)
    return left


def storage_full(settings: Settings, project: str) -> RateLimited:
    return _storage_full(project, settings.project_max_stored_bytes)


async def reserve_stored_bytes(conn: Any, settings: Settings, project: str, size: int) -> None:
    """Inside the transaction that inserts a file: lock the project's total, then check it."""
    limit = settings.project_max_stored_bytes
    if limit <= 0:
        return
    await conn.execute(_LOCK, (f"assistants.stored_bytes:{project}",))
    row: Any = await (await conn.execute(_STORED_BYTES, {"p": project})).fetchone()
    if int(row["n"]) + size > limit:
        raise _storage_full(project, limit)
