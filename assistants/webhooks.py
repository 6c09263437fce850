"""Webhook endpoints and the events they receive: the pure part (ids, objects, signatures).

Signatures follow Standard Webhooks (https://www.standardwebhooks.com), as OpenAI's own webhooks
do, so the official SDK's `client.webhooks.verify_signature(body, headers, secret=...)` checks
ours unchanged:

    webhook-id:        the event id (`evt_...`); the same on every retry, receivers de-duplicate by it
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: "v1," + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))

where `key` is the base64-decoded part of the secret after `whsec_`. The timestamp is signed, so a
receiver rejects stale replays by checking it is recent (the SDK allows 5 minutes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from assistants.ids import derived_id
from assistants.keyring import Keyring, UnknownKey
from assistants.objects import public

# Run statuses that are announced, and the event type each becomes.
NOTIFY_STATUSES = ("requires_action", "completed", "failed", "cancelled", "expired", "incomplete")
RUN_EVENT_TYPES = tuple(f"thread.run.{s}" for s in NOTIFY_STATUSES)
# Responses API (issue 15): a background response's end, from its run's status. A run waiting for
# function outputs has finished its response (api/response_objects.py shows it `completed`).
RESPONSE_EVENTS = {
    "requires_action": "response.completed",
    "completed": "response.completed",
    "failed": "response.failed",
    "expired": "response.failed",
    "cancelled": "response.cancelled",
    "incomplete": "response.incomplete",
}
RESPONSE_EVENT_TYPES = ("response.completed", "response.failed", "response.cancelled", "response.incomplete")
EVENT_TYPES = RUN_EVENT_TYPES + RESPONSE_EVENT_TYPES
MAX_URL_LENGTH = 2048
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    pass


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_hint(secret: str) -> str:
    return "whsec_..." + secret[-4:]


# Signing secrets are stored sealed (AES-256-GCM, bound to the endpoint's id), so a database dump
# or backup cannot forge deliveries. Rows written before sealing hold the bare `whsec_...` and are
# read as they are until the API seals them at start (api/routers/webhooks.seal_stored_secrets).
SEALED_PREFIX = "sealed:v1:"
_SECRET_PURPOSE = "assistants webhook secrets v1"


def seal_secret(keyring: Keyring | None, webhook_id: str, secret: str) -> str:
    """The `webhooks.secret` column's value; the bare secret when no key is configured (dev)."""
    if keyring is None:
        return secret
    kid, sealed = keyring.derived(_SECRET_PURPOSE).seal(secret.encode(), webhook_id.encode())
    return f"{SEALED_PREFIX}{kid}:{base64.b64encode(sealed).decode()}"


def open_secret(keyring: Keyring | None, webhook_id: str, stored: str) -> str:
    if not stored.startswith(SEALED_PREFIX):
        return stored
    if keyring is None:
        raise UnknownKey("a webhook secret is sealed but no ASSISTANTS_PAYLOAD_KEY is configured")
    kid, _, data = stored.removeprefix(SEALED_PREFIX).partition(":")
    return keyring.derived(_SECRET_PURPOSE).open(kid, base64.b64decode(data), webhook_id.encode()).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery attempt."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode()


def signed_headers(secret: str, event_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, event_id, ts, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: int | None = None,
) -> None:
    """Raise InvalidSignature unless `body` was signed with `secret` within `tolerance` seconds."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        event_id, ts_text, sig_header = (
            lower["webhook-id"],
            lower["webhook-timestamp"],
            lower["webhook-signature"],
        )
        ts = int(ts_text)
    except (KeyError, ValueError):
        raise InvalidSignature("missing or malformed webhook headers") from None
    current = int(time.time()) if now is None else now
    if abs(current - ts) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window")
    expected = sign(secret, event_id, ts, body)
    # The header may carry several space-separated signatures (during a secret rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in sig_header.split()):
        raise InvalidSignature("no signature matches")


def url_problem(url: str) -> str | None:
    """Why `url` cannot receive webhooks, or None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "Invalid URL."
    if parts.scheme not in ("http", "https"):
        return "Webhook URLs must use http or https."
    if not parts.hostname:
        return "Webhook URL has no host."
    if any(c.isspace() for c in url):
        return "Webhook URL contains whitespace."
    return None


def endpoint_object(
    webhook_id: str,
    *,
    url: str,
    event_types: list[str],
    name: str,
    secret: str,
    created_at: int,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """The public `webhook_endpoint` object (the official SDK's shape), without its secret."""
    return {
        "id": webhook_id,
        "object": "webhook_endpoint",
        "created_at": created_at,
        "updated_at": updated_at if updated_at is not None else created_at,
        "name": name,
        "url": url,
        "event_types": event_types,
        "signing_secret_hint": secret_hint(secret),
    }


def delivery_workflow_id(event_id: str, webhook_id: str) -> str:
    """WebhookDeliveryWorkflow's id: announcing an event twice finds its delivery under way."""
    return f"webhook-{event_id}-{webhook_id}"


def event_id_for(run: Mapping[str, Any]) -> str:
    """Derived from the run and its transition, so emitting twice yields one event.

    A run can require action once per tool-calling turn, so that transition also names its calls.
    """
    status = run["status"]
    calls: list[str] = []
    if status == "requires_action":
        action = run.get("required_action") or {}
        calls = [c["id"] for c in (action.get("submit_tool_outputs") or {}).get("tool_calls", [])]
    return derived_id("evt", run["id"], status, *calls)


def run_event(run: Mapping[str, Any], created_at: int) -> dict[str, Any]:
    """The event POSTed for a run that reached `run["status"]`; `data` is the run as the API shows it."""
    return {
        "id": event_id_for(run),
        "object": "event",
        "type": f"thread.run.{run['status']}",
        "created_at": created_at,
        "data": public(run),
    }


def response_event(response_id: str, event_type: str, created_at: int) -> dict[str, Any]:
    """The event POSTed when a background response ends: `data` names the response, as OpenAI's
    does (a receiver retrieves it). Its id is derived: a response ends once."""
    return {
        "id": derived_id("evt", response_id, event_type),
        "object": "event",
        "type": event_type,
        "created_at": created_at,
        "data": {"id": response_id},
    }
