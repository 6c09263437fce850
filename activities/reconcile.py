"""The reconciler's activity: settles runs whose row is active but whose workflow is gone.

A run's row and its RunWorkflow (workflow id = run id) disagree when something dies between
them: the API inserted the row and died before `start_workflow`, an operator terminated the
workflow, or it failed outside its own error handling. Nothing would ever move such a row again,
and the one-active-run-per-thread index would keep its thread locked. `reconcile_runs` describes
the workflow of each active run older than the grace period and, when it is missing or closed,
settles the row through `run_status.settle_gone_run` (which also ends the run's steps and
messages, logs the stream events and announces the run to webhooks). It only moves active rows,
so a run that its own workflow finished in the meantime keeps its status.

The API settles the same way when a cancel finds no workflow to cancel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from assistants.db.pool import Pool as DbPool
from assistants.db.run_status import settle_gone_run
from assistants.objects import ACTIVE_RUN_SQL, now
from assistants.payloads import ReconcileBatchInput, ReconcileBatchOutput
from assistants.run_workflow_state import workflow_state
from assistants.settings import Settings
from assistants.webhook_announcer import WebhookAnnouncer

log = logging.getLogger(__name__)

# Describe calls in flight at once, per activity.
DESCRIBE_CONCURRENCY = 16


class ReconcileActivities:
    def __init__(
        self, pool: DbPool, client: Client, announcer: WebhookAnnouncer | None, settings: Settings
    ) -> None:
        self.pool, self.client, self.announcer, self.settings = pool, client, announcer, settings

    @activity.defn(name="reconcile_runs")
    async def reconcile_runs(self, inp: ReconcileBatchInput) -> ReconcileBatchOutput:
        """Check one page of active runs (seq after `inp.after_seq`, oldest first)."""
        limit = self.settings.reconcile_batch_size
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT seq, id, project_id, status FROM runs WHERE {ACTIVE_RUN_SQL}"
                    " AND created_at <= %s AND seq > %s ORDER BY seq LIMIT %s",
                    (now() - self.settings.reconcile_grace_seconds, inp.after_seq, limit),
                )
            ).fetchall()
        gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def check(row: dict[str, Any]) -> bool:
            async with gate:
                return await self._reconcile(row)

        settled = sum(await asyncio.gather(*(check(r) for r in rows)))
        return ReconcileBatchOutput(
            checked=len(rows), settled=settled, last_seq=rows[-1]["seq"] if len(rows) == limit else None
        )

    async def _reconcile(self, row: dict[str, Any]) -> bool:
        state = await workflow_state(self.client, row["id"])
        if state == "running":
            if row["status"] == "cancelling":
                # The API marks the row before it asks the workflow to cancel; if it died in
                # between, ask again (a repeated cancel request is a no-op for Temporal).
                try:
                    await self.client.get_workflow_handle(row["id"]).cancel()
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:  # closed since: the next tick settles it
                        raise
            return False
        log.warning("run %s is %s but its workflow is %s: settling it", row["id"], row["status"], state)
        await settle_gone_run(self.pool, self.announcer, row["id"], row["project_id"], row["status"], state)
        return True
