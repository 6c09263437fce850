"""The reconciler's activity: settles runs whose row is active but whose workflow is gone.

A run's row and its RunWorkflow (workflow id = run id) disagree when something dies between
them: the API inserted the row and died before `start_workflow`, an operator terminated the
workflow, or it failed outside its own error handling. Nothing would ever move such a row again,
and the one-active-run-per-thread index would keep its thread locked. `reconcile_runs` describes
the workflow of each active run older than the grace period and, when it is missing or closed,
settles the row through `StoreActivities.finish_run` (which also ends the run's steps and
messages and logs the stream events). finish_run only moves active rows, so a run that its own
workflow finished in the meantime keeps its status.

The API settles the same way (`workflow_state`, `settle_gone_run`) when a cancel finds no
workflow to cancel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.store import StoreActivities
from assistants.db.pool import Pool as DbPool
from assistants.objects import now
from assistants.payloads import FinishRunInput, ReconcileBatchInput, ReconcileBatchOutput
from assistants.settings import Settings

log = logging.getLogger(__name__)

# Describe calls in flight at once, per activity.
DESCRIBE_CONCURRENCY = 16
# The same predicate as the partial index runs_one_active_per_thread, written out so the planner
# can use that (small) index instead of scanning the whole table.
_ACTIVE_SQL = "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"
_CLOSED_NAMES = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
}


async def workflow_state(client: Client, run_id: str) -> str:
    """`running`, `missing`, or why the run's workflow closed (`terminated`, `failed`, ...).

    Any error but not-found propagates: a Temporal that cannot answer says nothing about the run."""
    try:
        description = await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "missing"
        raise
    # Continued-as-new: describe follows the chain, so this only shows mid-hand-over.
    return _CLOSED_NAMES.get(description.status, "running") if description.status else "running"


async def settle_gone_run(
    store: StoreActivities, run_id: str, project_id: str, row_status: str, state: str
) -> None:
    """End an active run whose workflow is `state` (missing or closed): a run being cancelled
    becomes cancelled, any other fails with a `server_error` naming what happened."""
    if row_status == "cancelling":
        await store.finish_run(FinishRunInput(run_id=run_id, project_id=project_id, status="cancelled"))
        return
    await store.finish_run(
        FinishRunInput(
            run_id=run_id,
            project_id=project_id,
            status="failed",
            error_code="server_error",
            error_message=f"the run's workflow is gone ({state})",
        )
    )


class ReconcileActivities:
    def __init__(self, pool: DbPool, client: Client, store: StoreActivities, settings: Settings) -> None:
        self.pool, self.client, self.store, self.settings = pool, client, store, settings

    @activity.defn(name="reconcile_runs")
    async def reconcile_runs(self, inp: ReconcileBatchInput) -> ReconcileBatchOutput:
        """Check one page of active runs (seq after `inp.after_seq`, oldest first)."""
        limit = self.settings.reconcile_batch_size
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT seq, id, project_id, status FROM runs WHERE {_ACTIVE_SQL}"
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
        await settle_gone_run(self.store, row["id"], row["project_id"], row["status"], state)
        return True
