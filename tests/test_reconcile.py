"""Issue 11 point 2 end to end: no run stays active without a workflow.

Its own stack (`assistants up`) with the reconciler schedule ticking every second and a 2 s grace
period; runs driven through the official `openai` SDK, workflows terminated through the stack's
own Temporal, and a crash between inserting a run and starting its workflow mimicked in SQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import psycopg
import pytest
from psycopg.types.json import Jsonb
from temporalio.client import Client, WorkflowExecutionStatus

from tests.stackutil import StackHandle, own_stack

pytestmark = pytest.mark.timeout(420)
T = TypeVar("T")

SCHEDULE_ID = "assistants-reconcile-runs"
GRACE_SECONDS = 2
SETTLE_WITHIN = 30.0  # seconds: grace + a few 1 s ticks, with room for a loaded 2-core machine
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
]
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    with own_stack(
        "assistants-reconcile-",
        env={
            "ASSISTANTS_RECONCILE_INTERVAL_SECONDS": "1",
            "ASSISTANTS_RECONCILE_GRACE_SECONDS": str(GRACE_SECONDS),
        },
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI):  # type: ignore[no-untyped-def]
    return client.beta.assistants.create(
        model="smollm2-135m-instruct", instructions="Be brief.", temperature=0, tools=TOOLS
    )


def temporal(stack: StackHandle, action: Callable[[Client], Awaitable[T]]) -> T:
    """Run `action` with a client of the stack's own Temporal."""

    async def go() -> T:
        return await action(await stack.temporal())

    return asyncio.run(go())


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = SETTLE_WITHIN) -> tuple[T, float]:
    """Poll `probe` until it returns something; returns it and the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = probe()
        if value:
            return value, time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def waiting_run(client: openai.OpenAI, assistant: Any) -> tuple[Any, Any]:
    """A thread whose run waits in requires_action (a forced function call)."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice=FORCE, poll_interval_ms=200
    )
    assert run.status == "requires_action", run.last_error
    return thread, run


def status_of(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    return client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)


def settled(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    run = status_of(client, thread_id, run_id)
    return run if run.status in ("failed", "cancelled", "completed", "expired", "incomplete") else None


def workflow_status(stack: StackHandle, run_id: str) -> WorkflowExecutionStatus | None:
    async def describe(c: Client) -> WorkflowExecutionStatus | None:
        return (await c.get_workflow_handle(run_id).describe()).status

    return temporal(stack, describe)


def terminate(stack: StackHandle, run_id: str) -> None:
    async def go(c: Client) -> None:
        await c.get_workflow_handle(run_id).terminate("test: the workflow is gone")

    temporal(stack, go)


def test_terminated_workflow_is_failed_and_unlocks_its_thread(
    client: openai.OpenAI, assistant: Any, stack: StackHandle
) -> None:
    thread, run = waiting_run(client, assistant)
    terminate(stack, run.id)
    done, took = wait_for("the reconciler settles the run", lambda: settled(client, thread.id, run.id))
    assert done.status == "failed" and done.failed_at
    assert done.last_error.code == "server_error"
    assert done.last_error.message == "the run's workflow is gone (terminated)"
    assert done.required_action is None
    [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert step.status == "failed"
    print(f"terminated run settled {took:.1f}s after the terminate")
    # The thread is no longer locked: a new run is accepted (and cancelled at once).
    again = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, tool_choice=FORCE)
    assert again.status == "queued"
    assert client.beta.threads.runs.cancel(again.id, thread_id=thread.id).status == "cancelling"


def _insert_orphan(stack: StackHandle, template_run_id: str, thread_id: str, status: str) -> str:
    """A run row with no workflow, as a crash between the insert and `start_workflow` leaves it
    (or, `cancelling`, a crash between marking the row and asking the workflow to cancel)."""
    run_id = f"run_{uuid.uuid4().hex[:24]}"
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT project_id, assistant_id, data FROM runs WHERE id = %s", (template_run_id,)
        ).fetchone()
        assert row is not None
        project_id, assistant_id, data = row
        created = int(time.time())
        data = {
            **data,
            "id": run_id,
            "thread_id": thread_id,
            "status": status,
            "created_at": created,
            "started_at": None,
            "failed_at": None,
            "cancelled_at": None,
            "completed_at": None,
            "last_error": None,
            "required_action": None,
            "usage": None,
        }
        conn.execute(
            "INSERT INTO runs (id, project_id, thread_id, assistant_id, status, created_at, data)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (run_id, project_id, thread_id, assistant_id, status, created, Jsonb(data)),
        )
    return run_id


def test_runs_left_without_a_workflow_are_settled(
    client: openai.OpenAI, assistant: Any, stack: StackHandle
) -> None:
    # Any finished run of this project serves as the row's template.
    template = client.beta.threads.create_and_run(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        tool_choice=FORCE,
    )
    client.beta.threads.runs.cancel(template.id, thread_id=template.thread_id)
    wait_for("the template run ends", lambda: settled(client, template.thread_id, template.id))

    queued_thread = client.beta.threads.create(messages=[{"role": "user", "content": "a"}])
    cancelling_thread = client.beta.threads.create(messages=[{"role": "user", "content": "b"}])
    queued = _insert_orphan(stack, template.id, queued_thread.id, "queued")
    cancelling = _insert_orphan(stack, template.id, cancelling_thread.id, "cancelling")
    # Until settled, the orphan locks its thread, as it would in production.
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        client.beta.threads.runs.create(thread_id=queued_thread.id, assistant_id=assistant.id)

    failed, took = wait_for("the queued orphan is settled", lambda: settled(client, queued_thread.id, queued))
    assert failed.status == "failed" and failed.last_error.code == "server_error"
    assert failed.last_error.message == "the run's workflow is gone (missing)"
    print(f"orphan queued run settled {took:.1f}s after its insert")
    cancelled, _ = wait_for(
        "the cancelling orphan is settled", lambda: settled(client, cancelling_thread.id, cancelling)
    )
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.last_error is None
    again = client.beta.threads.runs.create(
        thread_id=queued_thread.id, assistant_id=assistant.id, tool_choice=FORCE
    )
    client.beta.threads.runs.cancel(again.id, thread_id=queued_thread.id)


def test_cancel_of_a_run_whose_workflow_is_gone_settles_it(
    client: openai.OpenAI, assistant: Any, stack: StackHandle
) -> None:
    thread, run = waiting_run(client, assistant)

    async def pause(c: Client) -> None:
        await c.get_schedule_handle(SCHEDULE_ID).pause(note="test: the API must settle this one alone")

    async def unpause(c: Client) -> None:
        await c.get_schedule_handle(SCHEDULE_ID).unpause()

    temporal(stack, pause)
    try:
        time.sleep(1.5)  # a tick already under way ends
        terminate(stack, run.id)
        cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        assert cancelled.status == "cancelled" and cancelled.cancelled_at
        assert cancelled.last_error is None and cancelled.required_action is None
        [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
        assert step.status == "cancelled"
        assert status_of(client, thread.id, run.id).status == "cancelled"
        # A terminal run still cannot be cancelled (as at OpenAI).
        with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'cancelled'"):
            client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    finally:
        temporal(stack, unpause)


def test_deleting_a_thread_cancels_its_waiting_run(
    client: openai.OpenAI, assistant: Any, stack: StackHandle
) -> None:
    thread, run = waiting_run(client, assistant)
    assert workflow_status(stack, run.id) == WorkflowExecutionStatus.RUNNING
    deleted = client.beta.threads.delete(thread.id)
    assert deleted.deleted
    _, took = wait_for(
        "the run's workflow closes",
        lambda: workflow_status(stack, run.id) not in (None, WorkflowExecutionStatus.RUNNING),
    )
    print(f"workflow closed {took:.1f}s after the thread was deleted")
    assert workflow_status(stack, run.id) == WorkflowExecutionStatus.CANCELED
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
