"""/v1/webhook_endpoints (the official SDK's `client.webhooks`), also served as /v1/webhooks.

Create, list, retrieve, update, delete, rotate_secret. The signing secret is returned only by
create and rotate_secret. Project-scoped: another project's endpoint is a 404.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter
from psycopg.types.json import Jsonb
from pydantic import AliasChoices, ConfigDict, Field

from api.deps import AppSettings, Listing, Pool, Project, Secrets
from api.errors import bad_request, not_found
from assistants.db import objects
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.keyring import Keyring
from assistants.netguard import non_public_address
from assistants.objects import now
from assistants.schemas import Strict
from assistants.settings import Settings
from assistants.webhooks import (
    EVENT_TYPES,
    RUN_EVENT_TYPES,
    SEALED_PREFIX,
    endpoint_object,
    new_secret,
    seal_secret,
    secret_hint,
    url_problem,
)

# TODO(lead): add "webhooks" to assistants.db.objects.Table; the generic reads work on it as is.
_TABLE = cast(objects.Table, "webhooks")
_MAX_ENDPOINTS = 100


class WebhookCreate(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str
    # `events` is this server's older spelling; `event_types` is the SDK's.
    event_types: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("event_types", "events")
    )
    name: str | None = Field(default=None, max_length=256)


class WebhookUpdate(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = None
    event_types: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("event_types", "events")
    )
    name: str | None = Field(default=None, max_length=256)


async def _check_url(url: str, settings: Settings) -> str:
    problem = url_problem(url)
    if problem:
        raise bad_request(problem, "url", "invalid_url")
    if not settings.webhooks_may_reach_private:
        blocked = await non_public_address(urlsplit(url).hostname or "")
        if blocked:
            raise bad_request(
                f"Webhook URLs must reach a public address; {blocked} is not one.", "url", "invalid_url"
            )
    return url


def _check_event_types(types: list[str] | None) -> list[str]:
    if types is None:
        return list(RUN_EVENT_TYPES)
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise bad_request(
            f"Invalid event type '{unknown[0] if unknown else ''}'. Supported: {', '.join(EVENT_TYPES)}.",
            "event_types",
            "invalid_value",
        )
    return list(dict.fromkeys(types))


async def create_webhook(
    body: WebhookCreate, project: Project, pool: Pool, settings: AppSettings, keyring: Secrets
) -> dict[str, Any]:
    url, types = await _check_url(body.url, settings), _check_event_types(body.event_types)
    secret = new_secret()
    obj = endpoint_object(
        new_id("wh"), url=url, event_types=types, name=body.name or "", secret=secret, created_at=now()
    )
    async with pool.connection() as conn:
        count = await (
            await conn.execute("SELECT count(*) AS n FROM webhooks WHERE project_id = %s", (project,))
        ).fetchone()
        if count and count["n"] >= _MAX_ENDPOINTS:
            raise bad_request(
                f"A project may have at most {_MAX_ENDPOINTS} webhook endpoints.", code="limit_reached"
            )
        await conn.execute(
            "INSERT INTO webhooks (id, project_id, url, secret, event_types, created_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                obj["id"],
                project,
                url,
                seal_secret(keyring, obj["id"], secret),
                types,
                obj["created_at"],
                Jsonb(obj),
            ),
        )
    return {**obj, "signing_secret": secret}


async def list_webhooks(project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    return (await objects.list_page(pool, _TABLE, project, **page.kwargs())).envelope()  # type: ignore[arg-type]


async def retrieve_webhook(webhook_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    obj = await objects.get(pool, _TABLE, project, webhook_id)
    if obj is None:
        raise not_found("webhook endpoint", webhook_id)
    return obj


async def update_webhook(
    webhook_id: str, body: WebhookUpdate, project: Project, pool: Pool, settings: AppSettings
) -> dict[str, Any]:
    given = body.model_fields_set
    fields: dict[str, Any] = {"updated_at": now()}
    if "url" in given and body.url is not None:
        fields["url"] = await _check_url(body.url, settings)
    if "event_types" in given:
        fields["event_types"] = _check_event_types(body.event_types)
    if "name" in given:
        fields["name"] = body.name or ""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE webhooks SET data = data || %s, url = coalesce(%s, url), event_types = coalesce(%s, event_types)"
                " WHERE id = %s AND project_id = %s RETURNING data",
                (Jsonb(fields), fields.get("url"), fields.get("event_types"), webhook_id, project),
            )
        ).fetchone()
    if row is None:
        raise not_found("webhook endpoint", webhook_id)
    return row["data"]


async def rotate_webhook_secret(
    webhook_id: str, project: Project, pool: Pool, keyring: Secrets
) -> dict[str, Any]:
    secret = new_secret()
    fields = {"updated_at": now(), "signing_secret_hint": secret_hint(secret)}
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE webhooks SET secret = %s, data = data || %s WHERE id = %s AND project_id = %s RETURNING data",
                (seal_secret(keyring, webhook_id, secret), Jsonb(fields), webhook_id, project),
            )
        ).fetchone()
    if row is None:
        raise not_found("webhook endpoint", webhook_id)
    return {**row["data"], "signing_secret": secret}


async def delete_webhook(webhook_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    # Deliveries under way find the endpoint gone and stop (see deliver_webhook).
    if not await objects.delete(pool, _TABLE, project, webhook_id):
        raise not_found("webhook endpoint", webhook_id)
    return {"id": webhook_id, "object": "webhook_endpoint.deleted", "deleted": True}


async def seal_stored_secrets(pool: DbPool, keyring: Keyring | None) -> int:
    """Seal the secrets of endpoints created before secrets were sealed (at API start; idempotent,
    and safe with several replicas: a row is only rewritten while it still holds a bare secret)."""
    if keyring is None:
        return 0
    sealed = 0
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, secret FROM webhooks WHERE secret NOT LIKE %s", (SEALED_PREFIX + "%",)
            )
        ).fetchall()
        for row in rows:
            cur = await conn.execute(
                "UPDATE webhooks SET secret = %s WHERE id = %s AND secret = %s",
                (seal_secret(keyring, row["id"], row["secret"]), row["id"], row["secret"]),
            )
            sealed += cur.rowcount
    return sealed


def _routes(prefix: str) -> APIRouter:
    r = APIRouter(prefix=prefix, tags=["webhooks"])
    r.add_api_route("", create_webhook, methods=["POST"])
    r.add_api_route("", list_webhooks, methods=["GET"])
    r.add_api_route("/{webhook_id}", retrieve_webhook, methods=["GET"])
    r.add_api_route("/{webhook_id}", update_webhook, methods=["POST"])
    r.add_api_route("/{webhook_id}", delete_webhook, methods=["DELETE"])
    r.add_api_route("/{webhook_id}/rotate_secret", rotate_webhook_secret, methods=["POST"])
    return r


router = APIRouter()
router.include_router(_routes("/v1/webhook_endpoints"))
router.include_router(_routes("/v1/webhooks"), include_in_schema=False)  # the same endpoints, shorter
