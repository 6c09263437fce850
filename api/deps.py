"""Request dependencies: the caller's project (from the API key), the pool, Temporal, settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request, Response
from starlette.datastructures import Headers
from starlette.types import Scope
from temporalio.client import Client

from api.errors import APIError
from api.limits import RequestWindow, count_request
from assistants.db.pool import Pool as DbPool
from assistants.keyring import Keyring
from assistants.keys import hash_key
from assistants.logjson import bind
from assistants.settings import Settings


def get_pool(request: Request) -> DbPool:
    return request.app.state.pool


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_keyring(request: Request) -> Keyring | None:
    """The keys that seal secrets at rest (assistants/keyring.py); None when none is configured."""
    return request.app.state.keyring


# Where the caller's project is kept once found: the body-limit middleware (api/limits_body.py)
# authenticates a request with a body before reading it, and get_project reuses its answer.
_PROJECT = "assistants.project"
_WINDOW = "assistants.request_window"


async def _project_of_key(pool: DbPool, authorization: str) -> str:
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT project_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                (hash_key(key.strip()),),
            )
        ).fetchone()
    if row is None:
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return str(row["project_id"])


async def authenticate(scope: Scope) -> str:
    """The caller's project, from its API key, counted once against its rate limit.

    Raises APIError (401) or RateLimited (429). Idempotent per request."""
    if _PROJECT in scope:
        return str(scope[_PROJECT])
    state = scope["app"].state
    project = await _project_of_key(state.pool, Headers(scope=scope).get("authorization", ""))
    scope[_WINDOW] = await count_request(state.pool, state.settings, project)
    scope[_PROJECT] = project
    bind(project_id=project)  # this request's log lines (api/log_context.py)
    return project


async def get_project(request: Request, response: Response) -> str:
    project = await authenticate(request.scope)
    window: RequestWindow | None = request.scope.get(_WINDOW)
    if window is not None:
        response.headers.update(window.headers())
    return project


Project = Annotated[str, Depends(get_project)]
Pool = Annotated[DbPool, Depends(get_pool)]
Temporal = Annotated[Client, Depends(get_temporal)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
Secrets = Annotated[Keyring | None, Depends(get_keyring)]


class ListParams:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Annotated[Literal["asc", "desc"], Query()] = "desc",
        after: Annotated[str | None, Query()] = None,
        before: Annotated[str | None, Query()] = None,
    ) -> None:
        self.limit, self.order, self.after, self.before = limit, order, after, before

    def kwargs(self) -> dict[str, Any]:
        return {"limit": self.limit, "order": self.order, "after": self.after, "before": self.before}


Listing = Annotated[ListParams, Depends()]
