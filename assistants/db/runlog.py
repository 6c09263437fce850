"""Writes shared by the store and inference activities and run_status: run-owned rows (the turn's
messages and steps, and ending those a run leaves in progress) and the run event log.

Rows a run creates have ids derived from (run id, turn), and inserts are `ON CONFLICT DO
NOTHING`, so a retried activity never creates a second message or step.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from assistants.db.pool import Conn as DbConn
from assistants.objects import now, public

NOTIFY_CHANNEL = "run_events"
# Also notified (same payload: the run id) when an append includes a change of the run's own status
# (`thread.run.<status>`), so a waiter for the status is not woken by every token delta.
STATUS_CHANNEL = "run_status"
_RUN_EVENT = "thread.run."


def changes_run_status(event: str) -> bool:
    """`thread.run.completed` does; `thread.run.step.delta` and message events do not."""
    return event.startswith(_RUN_EVENT) and "." not in event[len(_RUN_EVENT) :]


async def append_event(conn: DbConn, run_id: str, event: str, data: dict[str, Any], attempt: int = 0) -> None:
    await append_events(conn, run_id, [(event, data)], attempt)


async def append_events(
    conn: DbConn, run_id: str, events: list[tuple[str, dict[str, Any]]], attempt: int = 0
) -> None:
    """Append in one transaction holding a per-run lock until commit, so one run's seqs commit in
    order: a reader that has seen seq N never later finds a smaller seq appear behind its cursor."""
    if not events:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (run_id,))
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO run_events (run_id, attempt, event, data) VALUES (%s, %s, %s, %s)",
                [(run_id, attempt, e, Jsonb(public(d))) for e, d in events],
            )
        await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, run_id))
        if any(changes_run_status(e) for e, _ in events):
            await conn.execute("SELECT pg_notify(%s, %s)", (STATUS_CHANNEL, run_id))


def message_row(message_id: str, run: dict[str, Any], status: str = "in_progress") -> dict[str, Any]:
    return {
        "id": message_id,
        "object": "thread.message",
        "created_at": now(),
        "thread_id": run["thread_id"],
        "status": status,
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": "assistant",
        "content": [],
        "assistant_id": run["assistant_id"],
        "run_id": run["id"],
        "attachments": [],
        "metadata": {},
    }


def step_row(step_id: str, run: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step",
        "created_at": now(),
        "run_id": run["id"],
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "type": details["type"],
        "status": "in_progress",
        "cancelled_at": None,
        "completed_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "step_details": details,
        "usage": None,
        "metadata": {},
    }


async def insert_message(conn: DbConn, project_id: str, msg: dict[str, Any]) -> bool:
    cur = await conn.execute(
        "INSERT INTO messages (id, project_id, thread_id, run_id, created_at, data) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (msg["id"], project_id, msg["thread_id"], msg["run_id"], msg["created_at"], Jsonb(msg)),
    )
    return cur.rowcount > 0


async def insert_step(conn: DbConn, project_id: str, step: dict[str, Any]) -> bool:
    cur = await conn.execute(
        "INSERT INTO run_steps (id, project_id, thread_id, run_id, created_at, data) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (step["id"], project_id, step["thread_id"], step["run_id"], step["created_at"], Jsonb(step)),
    )
    return cur.rowcount > 0


# The step object's `last_error.code` is one of these two (the spec's RunStepObject).
_STEP_ERROR_CODES = ("server_error", "rate_limit_exceeded")


def step_error(step_status: str, run_error: dict[str, Any] | None) -> dict[str, str]:
    """`last_error` of a step its run ended: the run's own error when it failed, else what ended it."""
    if step_status == "failed" and run_error:
        code = run_error.get("code")
        return {
            "code": code if code in _STEP_ERROR_CODES else "server_error",
            "message": run_error.get("message") or "The run failed.",
        }
    reason = {
        "failed": "The run failed before this step finished.",
        "expired": "The run expired before this step finished.",
    }.get(step_status, "The run was cancelled before this step finished.")
    return {"code": "server_error", "message": reason}


async def end_unfinished(
    conn: DbConn, run_id: str, run_status: str, ts: int, run_error: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """End the steps and messages a run leaves in progress as it ends `run_status` (a step gets the
    run's status, its `<status>_at` and a `last_error` saying why); returns their stream events,
    for the caller to log with the run's own."""
    events: list[tuple[str, dict[str, Any]]] = []
    step_status = run_status if run_status in ("cancelled", "failed", "expired") else "cancelled"
    for row in await (
        await conn.execute(
            "UPDATE run_steps SET data = data || jsonb_build_object('status', %s::text, %s::text, %s::bigint,"
            " 'last_error', %s::jsonb) WHERE run_id = %s AND data->>'status' = 'in_progress' RETURNING data",
            (step_status, f"{step_status}_at", ts, Jsonb(step_error(step_status, run_error)), run_id),
        )
    ).fetchall():
        events.append((f"thread.run.step.{step_status}", row["data"]))
    reason = "run_" + run_status if run_status in ("cancelled", "expired", "failed") else "max_tokens"
    # A message ended mid-generation keeps the text its stream already delivered (the deltas of the
    # attempt that was not discarded), so what a client streamed equals what the thread stores.
    for row in await (
        await conn.execute(
            """
            UPDATE messages m SET data = m.data || jsonb_build_object(
                'status', 'incomplete', 'incomplete_at', %(ts)s::bigint,
                'incomplete_details', jsonb_build_object('reason', %(reason)s::text),
                'content', CASE WHEN jsonb_array_length(coalesce(m.data->'content', '[]')) = 0 AND s.text <> ''
                           THEN jsonb_build_array(jsonb_build_object('type', 'text', 'text',
                                jsonb_build_object('value', s.text, 'annotations', '[]'::jsonb)))
                           ELSE coalesce(m.data->'content', '[]') END)
              FROM (SELECT mm.id, coalesce((
                      SELECT string_agg(part->'text'->>'value', '' ORDER BY e.seq, part_no)
                        FROM run_events e, jsonb_array_elements(e.data->'delta'->'content') WITH ORDINALITY AS p(part, part_no)
                       WHERE e.run_id = %(run)s AND e.event = 'thread.message.delta' AND NOT e.discarded
                         AND e.data->>'id' = mm.id AND part->>'type' = 'text'), '') AS text
                      FROM messages mm WHERE mm.run_id = %(run)s AND mm.data->>'status' = 'in_progress') s
             WHERE m.id = s.id
            RETURNING m.data
            """,
            {"ts": ts, "reason": reason, "run": run_id},
        )
    ).fetchall():
        events.append(("thread.message.incomplete", row["data"]))
    return events


async def load_run(conn: DbConn, run_id: str, project_id: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute("SELECT data FROM runs WHERE id = %s AND project_id = %s", (run_id, project_id))
    ).fetchone()
    return None if row is None else row["data"]
