"""The OpenAI error envelope, for every error the API returns.

`{"error": {"message", "type", "param", "code"}}`; bad input is always a 4xx, never a 500.
A part of the system that is away (the database restarting, Temporal unreachable) is a 503 with
`Retry-After`, which the OpenAI SDKs retry; never a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def not_found(kind: str, obj_id: str, param: str | None = None) -> APIError:
    return APIError(404, f"No {kind} found with id '{obj_id}'.", param=param, code="not_found")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def envelope(
    status: int,
    message: str,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": type, "param": param, "code": code}},
        headers=headers,
    )


# Seconds a client should wait before retrying a 503: about how long a restarted part takes.
RETRY_AFTER_SECONDS = 1
_TEMPORAL_AWAY = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def service_unavailable(what: str) -> JSONResponse:
    return envelope(
        503,
        f"The {what} is temporarily unavailable; please retry the request.",
        "server_error",
        code="service_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


_STATUS_TYPES = {
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def _param_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return envelope(exc.status, exc.message, exc.type, exc.param, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "Invalid request"}
        if first.get("type") == "json_invalid" or (
            tuple(first.get("loc", ())) == ("body",)
            and first.get("type") in ("model_attributes_type", "dict_type")
        ):
            return envelope(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                "invalid_request_error",
            )
        param = _param_of(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "Invalid request"))
        if first.get("type") == "extra_forbidden":
            msg = f"Unrecognized request argument supplied: {param}"
        elif param:
            msg = f"Invalid value for '{param}': {msg}"
        return envelope(
            400,
            msg,
            "invalid_request_error",
            param,
            "invalid_value" if first.get("type") != "missing" else None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "Invalid URL: no such endpoint."
        return envelope(exc.status_code, detail, _STATUS_TYPES.get(exc.status_code, "invalid_request_error"))

    @app.exception_handler(psycopg.OperationalError)
    async def _database_away(_: Request, exc: psycopg.OperationalError) -> JSONResponse:
        # Connection refused or lost, the server starting up or shutting down, PoolTimeout (a
        # subclass): the database is away for now, not the request at fault.
        log.warning("database unavailable: %s: %s", exc.__class__.__name__, exc)
        return service_unavailable("database")

    @app.exception_handler(psycopg.DataError)
    async def _unstorable_value(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # SQLSTATE class 22 ("data exception"): a value from the request that Postgres cannot hold,
        # most often a NUL character (in an id, a query string or JSON). The request is at fault.
        log.info("unstorable request value: %s", exc)
        return envelope(
            400,
            "The request contains a value the server cannot store (for example a NUL character).",
            "invalid_request_error",
            code="invalid_value",
        )

    @app.exception_handler(RPCError)
    async def _temporal_error(_: Request, exc: RPCError) -> JSONResponse:
        if exc.status in _TEMPORAL_AWAY:
            log.warning("temporal unavailable: %s", exc)
            return service_unavailable("orchestration service")
        log.error("temporal error", exc_info=exc)
        return envelope(500, "The server had an error while processing your request.", "server_error")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "The server had an error while processing your request.", "server_error")
