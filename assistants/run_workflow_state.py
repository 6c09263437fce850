"""What Temporal says about a run's RunWorkflow (workflow id = run id), for the code that settles
runs whose workflow is gone: the reconciler and the API's cancel."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

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
