"""Function outputs a client gives a run waiting in `requires_action`: checked against the calls it
waits on, stored under their call ids, then handed to its workflow's submit_tool_outputs update.
Both APIs deliver them this way (submit_tool_outputs, and function_call_output items)."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.errors import APIError, bad_request
from assistants.objects import now
from assistants.payloads import ToolOutputsInput
from workflows.run import RunWorkflow


def check_tool_outputs(run: dict[str, Any], ids: list[str]) -> None:
    """Refuse outputs that do not answer exactly the calls the run waits on."""
    if run["status"] != "requires_action":
        raise bad_request(f'Runs in status "{run["status"]}" do not accept tool outputs.')
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise bad_request(f"Duplicate tool_call_id: {dupes[0]}", "tool_outputs")
    pending = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
    unknown = [i for i in ids if i not in pending]
    if unknown:
        raise bad_request(
            f"No tool call found with id '{unknown[0]}' in the run's required action.", "tool_outputs"
        )
    missing = [i for i in pending if i not in ids]
    if missing:
        raise bad_request(
            f"Expected tool outputs for call_ids {pending}, got {ids}. Missing: {missing[0]}.", "tool_outputs"
        )


async def deliver_tool_outputs(
    pool: Any, temporal: Any, project: str, run: dict[str, Any], ids: list[str], outputs: dict[str, str]
) -> None:
    """Hand checked outputs to the run's workflow (its submit_tool_outputs update)."""
    run_id = run["id"]
    if run.get("_by_reference"):
        # Stored first, so only the call ids travel through the workflow's history.
        await store_function_outputs(pool, project, run, outputs)
        update = ToolOutputsInput(
            run_id=run_id, project_id=project, step_id="", outputs={}, call_ids=ids, by_reference=True
        )
    else:  # a run started before history-by-reference
        update = ToolOutputsInput(run_id=run_id, project_id=project, step_id="", outputs=outputs)
    try:
        await temporal.get_workflow_handle(run_id).execute_update(RunWorkflow.submit_tool_outputs, update)
    except WorkflowUpdateFailedError as exc:
        raise bad_request(str(getattr(exc.cause, "message", exc.cause) or exc)) from None
    except RPCError as exc:
        raise APIError(409, f"The run can no longer accept tool outputs: {exc.message}") from None


async def store_function_outputs(
    pool: Any, project: str, run: dict[str, Any], outputs: dict[str, str]
) -> None:
    """Record the client's outputs under their call ids (a resubmission replaces them while the
    run still waits; record_tool_outputs copies them onto the step once the workflow resumes)."""
    async with pool.connection() as conn, conn.transaction():
        for call_id, output in outputs.items():
            step = await (
                await conn.execute(
                    "SELECT id FROM run_steps WHERE run_id = %s AND data->'step_details'->'tool_calls'"
                    " @> jsonb_build_array(jsonb_build_object('id', %s::text)) ORDER BY seq DESC LIMIT 1",
                    (run["id"], call_id),
                )
            ).fetchone()
            await conn.execute(
                "INSERT INTO run_tool_results (call_id, project_id, run_id, thread_id, step_id, type, output, created_at)"
                " VALUES (%s, %s, %s, %s, %s, 'function', %s, %s)"
                " ON CONFLICT (call_id) DO UPDATE SET output = excluded.output",
                (call_id, project, run["id"], run["thread_id"], step["id"] if step else "", output, now()),
            )
