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

Usage is the sum of the run's steps (each turn's on its first step). A run has it once it ends,
and also while it waits in requires_action: the response that made the calls has finished its part
and reports what it used (api/response_objects.py), and a response that continues the run counts
from there (`_usage_base`). Back in progress, the run has none until it ends.

A run asked to end `completed` whose answer was cut by a token limit (its message `incomplete`,
`max_tokens`: the model's context ran out, as no max_completion_tokens was set) ends `incomplete`
(`max_completion_tokens`), as one cut by its max_completion_tokens does: never `completed`.
"""

from __future__ import annotations

import dataclasses
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


async def run_usage(conn: DbConn, run_id: str) -> dict[str, Any]:
    """The run's usage so far: its steps' added up, details included."""
    row = await (
        await conn.execute(
            "SELECT coalesce(sum((data->'usage'->>'prompt_tokens')::bigint), 0)::bigint AS p,"
            " coalesce(sum((data->'usage'->>'completion_tokens')::bigint), 0)::bigint AS c,"
            " coalesce(sum((data->'usage'->'prompt_tokens_details'->>'cached_tokens')::bigint), 0)::bigint AS cached,"
            " coalesce(sum((data->'usage'->'completion_tokens_details'->>'reasoning_tokens')::bigint), 0)::bigint"
            " AS reasoning FROM run_steps WHERE run_id = %s",
            (run_id,),
        )
    ).fetchone()
    assert row is not None
    return {
        "prompt_tokens": row["p"],
        "completion_tokens": row["c"],
        "total_tokens": row["p"] + row["c"],
        "prompt_tokens_details": {"cached_tokens": row["cached"]},
        "completion_tokens_details": {"reasoning_tokens": row["reasoning"]},
    }


async def require_action(
    conn: DbConn, run_id: str, project_id: str, required_action: dict[str, Any], expires_at: int
) -> Run | None:
    fields = {
        "required_action": required_action,
        "expires_at": expires_at,
        "usage": await run_usage(conn, run_id),
        "_requires_action_at": now(),  # when the response that made the calls completed
    }
    run = await _move(conn, run_id, project_id, "requires_action", ("in_progress",), fields)
    if run is not None:
        await append_event(conn, run_id, "thread.run.requires_action", run)
    return run


async def resume(conn: DbConn, run_id: str, project_id: str) -> Run | None:
    """Tool outputs arrived: back to work (clients see it queued, then in progress)."""
    run = await _move(
        conn,
        run_id,
        project_id,
        "in_progress",
        ("requires_action",),
        {"required_action": None, "usage": None},
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
    fields["usage"] = await run_usage(conn, inp.run_id)
    run = await _move(conn, inp.run_id, inp.project_id, inp.status, ACTIVE_RUN_STATUSES, fields)
    if run is not None:
        events.append((f"thread.run.{inp.status}", run))
    await append_events(conn, inp.run_id, events)
    return run


async def _answer_cut(conn: DbConn, run_id: str) -> bool:
    """The run's answer was cut by a token limit: a message of it ended incomplete, max_tokens
    (only a run's last turn can: a cut turn makes no calls, so the run ends after it)."""
    row = await (
        await conn.execute(
            "SELECT 1 FROM messages WHERE run_id = %s AND data->>'status' = 'incomplete'"
            " AND data->'incomplete_details'->>'reason' = 'max_tokens' LIMIT 1",
            (run_id,),
        )
    ).fetchone()
    return row is not None


async def finish_run(pool: DbPool, inp: FinishRunInput, announcer: WebhookAnnouncer | None) -> None:
    async with pool.connection() as conn, conn.transaction():
        if inp.status == "completed" and await _answer_cut(conn, inp.run_id):
            inp = dataclasses.replace(inp, status="incomplete", incomplete_reason="max_completion_tokens")
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
