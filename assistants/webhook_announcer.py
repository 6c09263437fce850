"""Announcing a run's status change (and the end of the background responses it executes) to the
project's webhook endpoints.

`WebhookAnnouncer.emit` is the one place webhook events are created. It reads the run's *current*
status (not the caller's idea of it), writes the event once (id derived from the transition) and
starts one delivery workflow per endpoint under a fixed id, so calling it again - a retried store
activity, a crash between commit and start - never makes a second event or a second delivery.

The delivery workflow is handed in (`WebhookDeliveryWorkflow.run`) by whoever builds the
announcer (the worker, the API): this package sits below the workflows and never imports them.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.types import MethodAsyncSingleParam

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import load_run
from assistants.objects import now
from assistants.payloads import DeliverWebhookInput, DeliverWebhookOutput, EmitRunEventOutput
from assistants.settings import Settings
from assistants.webhooks import (
    NOTIFY_STATUSES,
    RESPONSE_EVENTS,
    delivery_workflow_id,
    response_event,
    run_event,
)

DeliveryWorkflow = MethodAsyncSingleParam[Any, DeliverWebhookInput, DeliverWebhookOutput]


class WebhookAnnouncer:
    """Store transitions call `emit` after each one they commit; it is idempotent, so call it on
    every attempt."""

    def __init__(self, client: Client, pool: DbPool, settings: Settings, delivery: DeliveryWorkflow) -> None:
        self.client, self.pool, self.settings, self.delivery = client, pool, settings, delivery

    async def emit(self, run_id: str, project_id: str, status: str | None = None) -> EmitRunEventOutput:
        """Announce the run's current status to its project's webhooks (if it is a notified one).

        `status` set: only if the run is still in that status (a transition that did not happen,
        such as finishing an already cancelled run, announces nothing)."""
        async with self.pool.connection() as conn, conn.transaction():
            run = await load_run(conn, run_id, project_id)
            if (
                run is None
                or run["status"] not in NOTIFY_STATUSES
                or (status is not None and run["status"] != status)
            ):
                return EmitRunEventOutput()
            created = now()
            events = [run_event(run, created)]
            if run["status"] in RESPONSE_EVENTS:
                # the background responses this run executes and that end with it (an earlier
                # response of the same run was frozen when function outputs continued it)
                rows = await (
                    await conn.execute(
                        "SELECT id FROM responses WHERE run_id = %s AND project_id = %s"
                        " AND (data->>'background')::boolean AND NOT data ? '_snapshot' ORDER BY seq",
                        (run_id, project_id),
                    )
                ).fetchall()
                events += [response_event(r["id"], RESPONSE_EVENTS[run["status"]], created) for r in rows]
            pending = [await self._record(conn, project_id, run_id, event) for event in events]
        out = EmitRunEventOutput()
        for event, hooks in zip(events, pending, strict=True):
            for webhook_id in hooks:
                await self._start_delivery(event["id"], webhook_id)
            if event is events[0] and hooks:
                out = EmitRunEventOutput(event_id=event["id"], webhook_ids=hooks)
        return out

    async def _record(self, conn: Any, project_id: str, run_id: str, event: dict[str, Any]) -> list[str]:
        """Write the event and its deliveries once (if any endpoint wants its type): the endpoints
        whose delivery is still pending."""
        hooks = [
            r["id"]
            for r in await (
                await conn.execute(
                    "SELECT id FROM webhooks WHERE project_id = %s AND %s = ANY(event_types) ORDER BY seq",
                    (project_id, event["type"]),
                )
            ).fetchall()
        ]
        if not hooks:
            return []
        await conn.execute(
            "INSERT INTO webhook_events (id, project_id, run_id, type, created_at, data) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (event["id"], project_id, run_id, event["type"], event["created_at"], Jsonb(event)),
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO webhook_deliveries (event_id, webhook_id, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(event["id"], h, event["created_at"]) for h in hooks],
            )
        return [
            r["webhook_id"]
            for r in await (
                await conn.execute(
                    "SELECT webhook_id FROM webhook_deliveries WHERE event_id = %s AND status = 'pending'",
                    (event["id"],),
                )
            ).fetchall()
        ]

    async def _start_delivery(self, event_id: str, webhook_id: str) -> None:
        try:
            await self.client.start_workflow(
                self.delivery,
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
