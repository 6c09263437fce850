"""Temporal's remote codec protocol, so the Temporal UI (and `temporal --codec-endpoint`) can show
encrypted payloads to operators: POST /codec/decode and /codec/encode take and return
``{"payloads": [{"metadata": {...}, "data": ...}]}`` (protobuf JSON, bytes as base64).

Never open: the caller presents the operator token (ASSISTANTS_OPERATOR_TOKEN) as
``Authorization: Bearer <token>``. A UI that cannot send headers (the embedded dev UI) is given
the endpoint ``/codec/t/<token>``, the token in the path. Project API keys do not work here: the
codec decrypts every project's payloads. CORS answers the Temporal UI's origin only.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Header, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import AppSettings as Settings
from api.errors import APIError, envelope
from assistants.keyring import UnknownKey, operator_token

router = APIRouter(prefix="/codec", include_in_schema=False)

Codec = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def _ui_origin(settings: Settings) -> str | None:
    if not settings.temporal_ui_url:
        return None
    parts = urlsplit(settings.temporal_ui_url)
    return f"{parts.scheme}://{parts.netloc}"


def _cors(request: Request, settings: Settings) -> dict[str, str]:
    origin = request.headers.get("origin")
    if origin is None or origin != _ui_origin(settings):
        return {}
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "authorization, content-type, x-namespace",
        "vary": "Origin",
    }


def _authorized(settings: Settings, presented: str | None) -> bool:
    expected = operator_token(settings)
    if not expected or not presented:
        return False  # no token configured: the endpoint is closed, never open
    return hmac.compare_digest(expected.encode(), presented.encode())


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _answer(request: Request, settings: Settings, token: str | None, op: str) -> Response:
    cors = _cors(request, settings)
    if not _authorized(settings, token):
        return envelope(401, "The codec endpoint needs the operator token.", "invalid_request_error",
                        code="invalid_api_key", headers=cors)  # fmt: skip
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"Invalid codec request: {exc}", param="payloads") from None
    codec = request.app.state.temporal.data_converter.payload_codec
    out = list(payloads.payloads)
    if codec is not None:  # no key: nothing was encrypted, so both directions are the identity
        try:
            out = await getattr(codec, op)(out)
        except UnknownKey as exc:
            raise APIError(400, str(exc), param="payloads") from None
        except (InvalidTag, DecodeError):  # altered, or sealed by another deployment's key
            raise APIError(400, "A payload could not be decrypted.", param="payloads") from None
    body = json_format.MessageToJson(Payloads(payloads=out))
    return Response(body, media_type="application/json", headers=cors)


Authorization = Annotated[str | None, Header()]


def _route(op: str) -> None:
    async def with_header(
        request: Request, settings: Settings, authorization: Authorization = None
    ) -> Response:
        return await _answer(request, settings, _bearer(authorization), op)

    async def with_path(request: Request, settings: Settings, token: str) -> Response:
        return await _answer(request, settings, token, op)

    async def preflight(request: Request, settings: Settings) -> Response:
        return Response(status_code=204, headers=_cors(request, settings))

    router.add_api_route(f"/{op}", with_header, methods=["POST"])
    router.add_api_route(f"/t/{{token}}/{op}", with_path, methods=["POST"])
    router.add_api_route(f"/{op}", preflight, methods=["OPTIONS"])
    router.add_api_route(f"/t/{{token}}/{op}", preflight, methods=["OPTIONS"])


for _op in ("decode", "encode"):
    _route(_op)
