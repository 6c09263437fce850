"""Every change of a run's status: the one writer of `runs.status` once the API has inserted the
run as `queued` (api/run_start.py).

The status is kept twice - the `status` column (indexed: one active run per thread, the
reconciler's scan) and `data->status` (the object clients read) - and `_move` is the one statement
that writes them, always together. Each transition names the statuses it may leave, so a retried
activity or a late duplicate never moves a run backwards (a cancelled run stays cancelled), and
logs its stream events in the caller's transaction:

    queued -> in_progress                               start           StoreActivities.start_run
    in_progress -> requires_action                      require_action  StoreActivities.require_action
    requires_action -> in_progress                      resume          StoreActivities.record_tool_outputs
    queued | in_progress | requires_action -> cancelling  mark_cancelling  the API's cancel
    active -> completed | incomplete | failed | cancelled | expired
                                                        finish          StoreActivities.finish_run, the API,
                                                                        the reconciler

`finish_run` and `settle_gone_run` end a run in a transaction of their own and then announce it to
webhooks (after the commit, and on every call: the announcement is idempotent, and a crash between
the commit and it must not lose it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from assistants import metrics
from assistants.db.pool import Conn as DbConn
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_event, append_events, end_unfinished
from assistants.objects import ACTIVE_RUN_STATUSES, now
from assistants.payloads import FinishRunInput

if TYPE_CHECKING:
    from assistants.webhook_announcer import WebhookAnnouncer

Run = dict[str, Any]

_TIMESTAMP_OF = {
    "completed": "completed_at",
    "failed": "failed_at",
    "cancelled": "cancelled_at",
    "incomplete": "completed_at",
}


async def _move(
    conn: DbConn, run_id: str, project_id: str, to: str, leaving: Sequence[str], fields: Mapping[str, Any]
) -> Run | None:
    """Set the status (column and `data->status`) and `fields` if the run is in one of `leaving`.
    Returns the run as it now is, or None when it was not in one of them."""
    row = await (
        await conn.execute(
            "UPDATE runs SET status = %s, data = data || %s"
            " WHERE id = %s AND project_id = %s AND status = ANY(%s) RETURNING data",
            (to, Jsonb({**fields, "status": to}), run_id, project_id, list(leaving)),
        )
    ).fetchone()
    return None if row is None else row["data"]


async def start(conn: DbConn, run_id: str, project_id: str, by_reference: bool) -> Run | None:
    run = await _move(
        conn, run_id, project_id, "in_progress", ("queued",),
        {"started_at": now(), "_by_reference": by_reference},
    )  # fmt: skip
    if run is not None:
        await append_event(conn, run_id, "thread.run.in_progress", run)
    return run


async def require_action(
    conn: DbConn, run_id: str, project_id: str, required_action: dict[str, Any], expires_at: int
) -> Run | None:
    run = await _move(
        conn, run_id, project_id, "requires_action", ("in_progress",),
        {"required_action": required_action, "expires_at": expires_at},
    )  # fmt: skip
    if run is not None:
        await append_event(conn, run_id, "thread.run.requires_action", run)
    return run


async def resume(conn: DbConn, run_id: str, project_id: str) -> Run | None:
    """Tool outputs arrived: back to work (clients see it queued, then in progress)."""
    run = await _move(
        conn, run_id, project_id, "in_progress", ("requires_action",), {"required_action": None}
    )
    if run is not None:
        await append_events(conn, run_id, [("thread.run.queued", run), ("thread.run.in_progress", run)])
    return run


async def mark_cancelling(conn: DbConn, run_id: str, project_id: str) -> Run | None:
    """Asked to cancel: the workflow (or whoever settles a run whose workflow is gone) ends it."""
    leaving = [s for s in ACTIVE_RUN_STATUSES if s != "cancelling"]
    run = await _move(conn, run_id, project_id, "cancelling", leaving, {})
    if run is not None:
        await append_event(conn, run_id, "thread.run.cancelling", run)
    return run


async def finish(conn: DbConn, inp: FinishRunInput) -> Run | None:
    """End an active run, and with it whatever steps and messages it left in progress."""
    ts = now()
    fields: dict[str, Any] = {"required_action": None}
    if inp.status in _TIMESTAMP_OF:
        fields[_TIMESTAMP_OF[inp.status]] = ts
    if inp.incomplete_reason:
        fields["incomplete_details"] = {"reason": inp.incomplete_reason}
    if inp.error_code or inp.error_message:
        fields["last_error"] = {"code": inp.error_code or "server_error", "message": inp.error_message or ""}
    events = await end_unfinished(conn, inp.run_id, inp.status, ts, fields.get("last_error"))
    usage = await (
        await conn.execute(
            "SELECT coalesce(sum((data->'usage'->>'prompt_tokens')::bigint), 0)::bigint AS p,"
            " coalesce(sum((data->'usage'->>'completion_tokens')::bigint), 0)::bigint AS c FROM run_steps WHERE run_id = %s",
            (inp.run_id,),
        )
    ).fetchone()
    assert usage is not None
    fields["usage"] = {
        "prompt_tokens": usage["p"],
        "completion_tokens": usage["c"],
        "total_tokens": usage["p"] + usage["c"],
    }
    run = await _move(conn, inp.run_id, inp.project_id, inp.status, ACTIVE_RUN_STATUSES, fields)
    if run is not None:
        events.append((f"thread.run.{inp.status}", run))
    await append_events(conn, inp.run_id, events)
    return run


async def finish_run(pool: DbPool, inp: FinishRunInput, announcer: WebhookAnnouncer | None) -> None:
    async with pool.connection() as conn, conn.transaction():
        run = await finish(conn, inp)
    if run is not None:  # counted once: a retried call finds the run already ended
        metrics.observe_run_finished(run, inp.status)
    if announcer is not None:
        await announcer.emit(inp.run_id, inp.project_id, inp.status)


async def settle_gone_run(
    pool: DbPool,
    announcer: WebhookAnnouncer | None,
    run_id: str,
    project_id: str,
    row_status: str,
    workflow_state: str,
) -> None:
    """End an active run whose workflow is missing or closed (`workflow_state`): a run being
    cancelled becomes cancelled, any other fails with a `server_error` naming what happened."""
    if row_status == "cancelling":
        inp = FinishRunInput(run_id=run_id, project_id=project_id, status="cancelled")
    else:
        inp = FinishRunInput(
            run_id=run_id,
            project_id=project_id,
            status="failed",
            error_code="server_error",
            error_message=f"the run's workflow is gone ({workflow_state})",
        )
    await finish_run(pool, inp, announcer)
