"""Short workflows the API executes and awaits (a vector store search, an input token count): the
work needs a model only workers load. A refusal the activity marks `InvalidRequest` is the
client's 400 (naming `param`); any other failure a 500, and Temporal out of reach a 503."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.errors import APIError, bad_request
from assistants.ids import new_id


async def execute(
    temporal: Client,
    run: Any,
    inp: Any,
    *,
    id_prefix: str,
    task_queue: str,
    execution_timeout: timedelta,
    param: str,
    what: str,
) -> Any:
    """`run` (a workflow's run method) on `inp`; `what` names the work in error messages."""
    try:
        return await temporal.execute_workflow(
            run, inp, id=new_id(id_prefix), task_queue=task_queue, execution_timeout=execution_timeout
        )
    except WorkflowFailureError as exc:
        cause = getattr(exc.cause, "cause", None)  # WorkflowFailure <- ActivityError <- ApplicationError
        if isinstance(cause, ApplicationError) and cause.type == "InvalidRequest":
            raise bad_request(cause.message, param) from None
        raise APIError(500, f"{what} failed.", type="server_error") from exc
    except RPCError as exc:
        raise APIError(503, f"{what} is unavailable.", type="server_error") from exc
