"""Webhook activities: announce run status changes, and POST each event to each endpoint.

`RunEvents.emit` is the one place events are created. It reads the run's *current* status (not
the caller's idea of it), writes the event once (id derived from the transition) and starts one
delivery workflow per endpoint under a fixed id, so calling it again - a retried store activity,
a crash between commit and start - never makes a second event or a second delivery.
"""

from __future__ import annotations

import json
import logging

import httpx
from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import load_run
from assistants.netguard import non_public_address
from assistants.objects import now
from assistants.payloads import (
    DeliverWebhookInput,
    DeliverWebhookOutput,
    EmitRunEventInput,
    EmitRunEventOutput,
    WebhookDeliveryFailed,
)
from assistants.settings import Settings
from assistants.webhooks import NOTIFY_STATUSES, run_event, signed_headers

log = logging.getLogger(__name__)
_ERROR_CHARS = 500


def event_body(event: dict) -> bytes:  # type: ignore[type-arg]
    """The exact bytes POSTed and signed (ASCII-only JSON, so no encoding can differ)."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


class RunEvents:
    """Starts webhook deliveries for a run's status change. Store activities call `emit` after
    each transition they commit; it is idempotent, so call it on every attempt."""

    def __init__(self, client: Client, pool: DbPool, settings: Settings) -> None:
        self.client, self.pool, self.settings = client, pool, settings

    async def emit(self, run_id: str, project_id: str, status: str | None = None) -> EmitRunEventOutput:
        async with self.pool.connection() as conn, conn.transaction():
            run = await load_run(conn, run_id, project_id)
            if (
                run is None
                or run["status"] not in NOTIFY_STATUSES
                or (status is not None and run["status"] != status)
            ):
                return EmitRunEventOutput()
            event_type = f"thread.run.{run['status']}"
            hooks = [
                r["id"]
                for r in await (
                    await conn.execute(
                        "SELECT id FROM webhooks WHERE project_id = %s AND %s = ANY(event_types) ORDER BY seq",
                        (project_id, event_type),
                    )
                ).fetchall()
            ]
            if not hooks:
                return EmitRunEventOutput()
            event = run_event(run, now())
            await conn.execute(
                "INSERT INTO webhook_events (id, project_id, run_id, type, created_at, data) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (event["id"], project_id, run_id, event_type, event["created_at"], Jsonb(event)),
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO webhook_deliveries (event_id, webhook_id, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(event["id"], h, event["created_at"]) for h in hooks],
                )
            pending = [
                r["webhook_id"]
                for r in await (
                    await conn.execute(
                        "SELECT webhook_id FROM webhook_deliveries WHERE event_id = %s AND status = 'pending'",
                        (event["id"],),
                    )
                ).fetchall()
            ]
        for webhook_id in pending:
            await self._start_delivery(event["id"], webhook_id)
        return EmitRunEventOutput(event_id=event["id"], webhook_ids=pending)

    async def _start_delivery(self, event_id: str, webhook_id: str) -> None:
        from workflows.webhooks import WebhookDeliveryWorkflow, delivery_workflow_id

        try:
            await self.client.start_workflow(
                WebhookDeliveryWorkflow.run,
                DeliverWebhookInput(
                    event_id=event_id,
                    webhook_id=webhook_id,
                    delivery_window_seconds=self.settings.webhook_delivery_window_seconds,
                ),
                id=delivery_workflow_id(event_id, webhook_id),
                task_queue=self.settings.runs_task_queue,
                # A delivery that succeeded is never repeated; one an operator terminated may be re-driven.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            pass


class WebhookActivities:
    def __init__(
        self, pool: DbPool, http: httpx.AsyncClient, events: RunEvents, allow_private: bool = False
    ) -> None:
        self.pool, self.http, self.events = pool, http, events
        self.allow_private = allow_private  # see assistants.netguard

    @activity.defn(name="emit_run_event")
    async def emit_run_event(self, inp: EmitRunEventInput) -> EmitRunEventOutput:
        return await self.events.emit(inp.run_id, inp.project_id, inp.status)

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliverWebhookInput) -> DeliverWebhookOutput:
        """One POST. 2xx = delivered; anything else raises, and Temporal retries with backoff."""
        attempt = activity.info().attempt
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT w.url, w.secret, e.data FROM webhooks w JOIN webhook_events e ON e.id = %s WHERE w.id = %s",
                    (inp.event_id, inp.webhook_id),
                )
            ).fetchone()
        if row is None:  # the endpoint was deleted (its deliveries with it): nothing to send
            return DeliverWebhookOutput(status="skipped", attempts=attempt)
        body = event_body(row["data"])
        status: int | None = None
        error: str | None = None
        blocked = None if self.allow_private else await non_public_address(httpx.URL(row["url"]).host)
        if blocked is not None:
            error = f"refused: {blocked} is not a public address (ASSISTANTS_WEBHOOK_ALLOW_PRIVATE)"
            await self._record(inp, attempt, None, error)
            raise ApplicationError(
                f"webhook delivery to {inp.webhook_id} {error}", type="WebhookBlocked", non_retryable=True
            )
        try:
            resp = await self.http.post(
                row["url"], content=body, headers=signed_headers(row["secret"], inp.event_id, body)
            )
            status = resp.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {resp.text[:_ERROR_CHARS]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        await self._record(inp, attempt, status, error)
        if error is not None:
            # Retryable by design: the receiver may be down for hours; the delivery window ends it.
            raise ApplicationError(
                f"webhook delivery to {inp.webhook_id} failed: {error}", type="WebhookDeliveryError"
            )
        return DeliverWebhookOutput(status="delivered", attempts=attempt, http_status=status)

    async def _record(
        self, inp: DeliverWebhookInput, attempt: int, status: int | None, error: str | None
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET attempts = greatest(attempts, %s), last_status = %s, last_error = %s,"
                " status = CASE WHEN %s THEN 'delivered' ELSE status END,"
                " delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END WHERE event_id = %s AND webhook_id = %s",
                (attempt, status, error, error is None, error is None, now(), inp.event_id, inp.webhook_id),
            )

    @activity.defn(name="fail_webhook_delivery")
    async def fail_webhook_delivery(self, inp: WebhookDeliveryFailed) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error, %s)"
                " WHERE event_id = %s AND webhook_id = %s AND status = 'pending'",
                (inp.error[:_ERROR_CHARS], inp.event_id, inp.webhook_id),
            )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """No retries and no redirects of its own: Temporal retries, and a 3xx is not a delivery."""
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        transport=httpx.AsyncHTTPTransport(retries=0),
        headers={"user-agent": "assistants-webhooks/1"},
    )
