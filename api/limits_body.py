"""Request bodies are bounded on the wire and read only from authenticated callers.

A pure ASGI middleware: a declared `Content-Length` over the route's limit is refused at once; any
other body (chunked included) is counted as the server receives it, and the request is answered
413 as soon as the count passes the limit, so nothing over it is buffered, parsed or spooled.
A request to `/v1/` that carries a body is authenticated first (FastAPI reads bodies before it
solves dependencies): a missing or bad key is a 401 with the body left unread.
"""

from __future__ import annotations

import logging
import re

import psycopg
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import authenticate
from api.errors import APIError, envelope, service_unavailable
from api.limits import RateLimited
from assistants.settings import Settings

log = logging.getLogger(__name__)
_PARTS_PATH = re.compile(r"^/v1/uploads/[^/]+/parts/?$")
# Room for the multipart framing around a part's bytes (boundaries, part headers); the part's own
# bytes are held to `upload_part_max_bytes` exactly by the route.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# The connection cannot be reused when the rest of a body was never read.
_CLOSE = {"connection": "close"}


class _BodyTooLarge(Exception):
    pass


def body_limit(settings: Settings, path: str) -> int:
    if path.startswith("/v1/files"):
        return max(settings.max_request_bytes, settings.max_file_bytes)
    if _PARTS_PATH.match(path):  # only the parts route of /v1/uploads takes large bodies
        return max(settings.max_request_bytes, settings.upload_part_max_bytes + MULTIPART_OVERHEAD_BYTES)
    return settings.max_request_bytes


async def _too_large(limit: int, size: str | None, scope: Scope, receive: Receive, send: Send) -> None:
    shown = f"{size} bytes" if size else "more bytes"
    await envelope(
        413,
        f"Request body too large: {shown} (limit {limit}).",
        "invalid_request_error",
        code="request_too_large",
        headers=_CLOSE,
    )(scope, receive, send)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = body_limit(self.settings, scope["path"])
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit, declared, scope, receive, send)
            return
        has_body = (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in headers
        if has_body and scope["path"].startswith("/v1/"):
            try:
                await authenticate(scope)
            except APIError as exc:
                await envelope(exc.status, exc.message, exc.type, exc.param, exc.code, headers=_CLOSE)(
                    scope, receive, send
                )
                return
            except RateLimited as exc:
                exc.headers.update(_CLOSE)
                await exc.response()(scope, receive, send)
                return
            except psycopg.OperationalError as exc:  # as api/errors.py: the database is away
                log.warning("database unavailable: %s: %s", exc.__class__.__name__, exc)
                await service_unavailable("database")(scope, receive, send)
                return
        await self._counted(limit, scope, receive, send)

    async def _counted(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        over = False
        started = replaced = False  # the app's response has started; ours replaced it

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge  # the app stops reading; whatever it answers is replaced
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if over and not started:  # the app's own answer to the broken read: ours instead
                if not replaced:
                    replaced = True
                    await _too_large(limit, None, scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not started and not replaced:
                await _too_large(limit, None, scope, receive, send)
