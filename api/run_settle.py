"""Settling runs from the API when their workflow is gone or never started, so that no run stays
active (and its thread locked) with nothing left to move it.

The reconciler schedule (workflows/reconcile.py) covers what a request cannot see: a crash between
inserting a run and starting its workflow, a workflow terminated by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.errors import APIError
from assistants.db import run_status
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import load_run
from assistants.payloads import FinishRunInput
from assistants.run_workflow_state import workflow_state
from assistants.settings import Settings
from assistants.webhook_announcer import WebhookAnnouncer
from workflows.webhooks import WebhookDeliveryWorkflow

log = logging.getLogger(__name__)

# Temporal could not be reached (or answer in time): the client may retry the same request.
UNREACHABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}


def orchestration_error(what: str, exc: RPCError) -> APIError:
    if exc.status in UNREACHABLE:
        return APIError(503, f"{what}: the orchestration service is unavailable.", type="server_error")
    return APIError(500, f"{what}: {exc.message}", type="server_error")


def announcer(pool: DbPool, temporal: Client, settings: Settings) -> WebhookAnnouncer:
    """Announces the runs the API settles to webhooks, as the workers do theirs."""
    return WebhookAnnouncer(temporal, pool, settings, WebhookDeliveryWorkflow.run)


async def fail_unstarted_run(
    pool: DbPool, temporal: Client, settings: Settings, project: str, run_id: str, reason: str
) -> None:
    """The run's workflow could not be started, so nothing will ever run it: fail it now."""
    try:
        await run_status.finish_run(
            pool,
            FinishRunInput(
                run_id=run_id,
                project_id=project,
                status="failed",
                error_code="server_error",
                error_message=f"could not start the run: {reason}",
            ),
            announcer(pool, temporal, settings),
        )
    except Exception:
        # The client still gets its error; the reconciler settles the run after its grace period.
        log.exception("run %s: could not record that its workflow did not start", run_id)


async def cancel_active_run(
    pool: DbPool, temporal: Client, settings: Settings, project: str, run_id: str
) -> dict[str, Any] | None:
    """Mark the run `cancelling` and ask its workflow to cancel (the workflow then settles it).
    A run whose workflow is missing or closed is settled `cancelled` here instead.

    Returns the run as it now is, or None when it was not active (terminal, or gone)."""
    async with pool.connection() as conn, conn.transaction():
        run = await run_status.mark_cancelling(conn, run_id, project) or await load_run(conn, run_id, project)
    if run is None or run["status"] != "cancelling":
        return None
    try:
        # Describe first: Temporal accepts a cancel request for a closed workflow without a word.
        state = await workflow_state(temporal, run_id)
        if state == "running":
            await temporal.get_workflow_handle(run_id).cancel()
            return run
    except RPCError as exc:
        # The row stays `cancelling`: a retried cancel, or the reconciler, delivers the request.
        raise orchestration_error("The run could not be cancelled", exc) from exc
    await run_status.settle_gone_run(
        pool, announcer(pool, temporal, settings), run_id, project, "cancelling", state
    )
    async with pool.connection() as conn:
        return await load_run(conn, run_id, project)
