"""The paths of every workflow type but RunWorkflow (tests/workflow_scenarios.py has its own),
driven by fake activities registered under the real names in Temporal's time-skipping test server
(the reconciler's schedule in the dev server, which has schedules).

Shared by tests/test_workflow_histories.py (what each path does, and that its committed history
replays) and tests/record_history.py (which records each path once, into
`tests/histories/<path>_<version>.json`, and never overwrites one).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_type_hints

from temporalio import activity
from temporalio.client import (
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleSpec,
    ScheduleState,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from assistants.payloads import (
    CountInputTokensInput,
    DeliverWebhookInput,
    DeliverWebhookOutput,
    EmbedFileOutput,
    FileSearchInput,
    FileSearchOutput,
    FileSearchResult,
    IngestFileInput,
    MarkFileInput,
    ParseFileOutput,
    ReconcileBatchInput,
    ReconcileBatchOutput,
    ReconcileRunsInput,
    WebhookDeliveryFailed,
)
from tests.workflow_scenarios import wait_for
from workflows.ingest import IngestFileWorkflow
from workflows.input_tokens import CountInputTokensWorkflow
from workflows.reconcile import ReconcileRunsWorkflow
from workflows.vector_store_search import VectorStoreSearchWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

QUEUE = "test-workflows"
INFERENCE_QUEUE = "test-inference"  # count_input_tokens runs there, as in production
WORKFLOWS = [
    IngestFileWorkflow,
    VectorStoreSearchWorkflow,
    CountInputTokensWorkflow,
    WebhookDeliveryWorkflow,
    ReconcileRunsWorkflow,
]

# What a fake activity does with its input: return a result or raise. BLOCK: heartbeat until
# the workflow is cancelled.
Behaviour = Callable[[Any], Any]
BLOCK: Behaviour = lambda inp: None  # noqa: E731 (compared by identity)


class FakeActivities:
    """Every activity these workflows schedule, under its real name: each records its call, then
    behaves as the path's script says."""

    def __init__(self, script: dict[str, Behaviour]) -> None:
        self.script = script
        self.calls: list[tuple[str, Any]] = []  # (activity name, input), in the order made
        self.cancelled = False  # a blocked activity saw its cancel

    async def _act(self, name: str, inp: Any) -> Any:
        self.calls.append((name, inp))
        behaviour = self.script[name]
        if behaviour is BLOCK:
            try:
                while True:  # until the cancel arrives with a heartbeat's answer
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return behaviour(inp)

    def called(self, name: str) -> bool:
        return any(n == name for n, _ in self.calls)

    @activity.defn(name="parse_file")
    async def parse_file(self, inp: IngestFileInput) -> ParseFileOutput:
        return await self._act("parse_file", inp)  # type: ignore[no-any-return]

    @activity.defn(name="embed_file")
    async def embed_file(self, inp: IngestFileInput) -> EmbedFileOutput:
        return await self._act("embed_file", inp)  # type: ignore[no-any-return]

    @activity.defn(name="mark_file")
    async def mark_file(self, inp: MarkFileInput) -> None:
        await self._act("mark_file", inp)

    @activity.defn(name="file_search")
    async def file_search(self, inp: FileSearchInput) -> FileSearchOutput:
        return await self._act("file_search", inp)  # type: ignore[no-any-return]

    @activity.defn(name="count_input_tokens")
    async def count_input_tokens(self, inp: CountInputTokensInput) -> int:
        return await self._act("count_input_tokens", inp)  # type: ignore[no-any-return]

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliverWebhookInput) -> DeliverWebhookOutput:
        return await self._act("deliver_webhook", inp)  # type: ignore[no-any-return]

    @activity.defn(name="fail_webhook_delivery")
    async def fail_webhook_delivery(self, inp: WebhookDeliveryFailed) -> None:
        await self._act("fail_webhook_delivery", inp)

    @activity.defn(name="reconcile_runs")
    async def reconcile_runs(self, inp: ReconcileBatchInput) -> ReconcileBatchOutput:
        return await self._act("reconcile_runs", inp)  # type: ignore[no-any-return]

    def on_runs_queue(self) -> list[Any]:
        return [
            self.parse_file,
            self.embed_file,
            self.mark_file,
            self.file_search,
            self.deliver_webhook,
            self.fail_webhook_delivery,
            self.reconcile_runs,
        ]


@dataclass
class WorkflowPath:
    """One path: the workflow's run method and input, the activities' script, and when (if ever)
    the client cancels. With `ticks`, a Temporal Schedule starts the workflow that many times, as
    the reconcile schedule does, and the last tick's history starts with the previous tick's result."""

    run: Callable[..., Any]
    arg: Any
    script: dict[str, Behaviour]
    cancel_when: Callable[[FakeActivities], bool] | None = None
    ticks: int = 0


@dataclass
class Outcome:
    status: str  # how the workflow ended: completed | failed | canceled
    result: Any  # what it returned (None unless completed)
    calls: list[tuple[str, Any]]  # (activity name, input), in the order the workflow made them
    history: WorkflowHistory


def temporal_binary(name: str) -> str:
    """A Temporal server binary; both ship in the venv, whose bin/ may not be on PATH."""
    return shutil.which(name) or str(Path(sys.executable).parent / name)


async def run_path(path: WorkflowPath) -> Outcome:
    """One path in a server of its own. Time-skipping, except for schedules, which only the dev
    server has; and a fresh server each time, since a cancelled, heartbeating activity can leave a
    test server's clock locked for every later path (starting one takes a tenth of a second)."""
    if path.ticks:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary("temporal")
        ) as env:
            return await _run_scheduled(env, path)
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    ) as env:
        return await _run_once(env, path)


@contextlib.asynccontextmanager
async def _workers(env: WorkflowEnvironment, fakes: FakeActivities) -> AsyncIterator[None]:
    # Heartbeats go out at once, so a cancel reaches a blocked activity within a heartbeat.
    fast = timedelta(milliseconds=50)
    async with (
        Worker(
            env.client,
            task_queue=QUEUE,
            workflows=WORKFLOWS,
            activities=fakes.on_runs_queue(),
            max_heartbeat_throttle_interval=fast,
        ),
        Worker(env.client, task_queue=INFERENCE_QUEUE, activities=[fakes.count_input_tokens]),
    ):
        yield


async def _run_once(env: WorkflowEnvironment, path: WorkflowPath) -> Outcome:
    fakes = FakeActivities(path.script)
    async with _workers(env, fakes):
        # Only the handle start_workflow returns skips time while it waits for the result.
        handle = await env.client.start_workflow(
            path.run, path.arg, id=f"path-{uuid.uuid4().hex}", task_queue=QUEUE
        )
        if path.cancel_when is not None:
            await wait_for(lambda: path.cancel_when(fakes))  # type: ignore[misc]
            await handle.cancel()
        try:
            await handle.result()
        except WorkflowFailureError:
            pass  # failed or cancelled: its history says which
        if path.cancel_when is not None:
            await wait_for(lambda: fakes.cancelled)  # the cancel reached the running activity
        return await _outcome(env, path, fakes, await handle.fetch_history())


async def _run_scheduled(env: WorkflowEnvironment, path: WorkflowPath) -> Outcome:
    fakes = FakeActivities(path.script)
    async with _workers(env, fakes):
        schedule = await env.client.create_schedule(
            f"path-{uuid.uuid4().hex}",
            Schedule(
                action=ScheduleActionStartWorkflow(path.run, path.arg, id="tick", task_queue=QUEUE),
                spec=ScheduleSpec(),  # no times of its own: each tick is a trigger
                state=ScheduleState(paused=True),
            ),
        )
        try:
            for tick in range(path.ticks):
                await schedule.trigger()
                handle = await _action(env, schedule, tick)
                await handle.result()  # the next tick starts with this one's result
        finally:
            await schedule.delete()
        return await _outcome(env, path, fakes, await handle.fetch_history())


async def _action(env: WorkflowEnvironment, schedule: ScheduleHandle, n: int) -> WorkflowHandle[Any, Any]:
    """The workflow the schedule's n-th action (from 0) started."""
    for _ in range(200):
        actions = (await schedule.describe()).info.recent_actions
        if len(actions) > n:
            started = actions[n].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            return env.client.get_workflow_handle(started.workflow_id, run_id=started.first_execution_run_id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the schedule did not start action {n}")


async def _outcome(
    env: WorkflowEnvironment, path: WorkflowPath, fakes: FakeActivities, history: WorkflowHistory
) -> Outcome:
    last = history.events[-1]
    status = (last.WhichOneof("attributes") or "").removeprefix("workflow_execution_")
    status = status.removesuffix("_event_attributes")
    result = None
    if last.HasField("workflow_execution_completed_event_attributes"):
        payloads = last.workflow_execution_completed_event_attributes.result.payloads
        [result] = await env.client.data_converter.decode(payloads, [get_type_hints(path.run)["return"]])
    return Outcome(status, result, fakes.calls, history)


# --- the scripts ---------------------------------------------------------------------------------
INGEST = IngestFileInput(project_id="proj_1", vector_store_id="vs_1", file_id="file_1")
HIT = FileSearchResult(file_id="file_1", filename="notes.md", score=0.83, text="the answer", chunk_ids=["c1"])


def _parsed(inp: IngestFileInput) -> ParseFileOutput:
    return ParseFileOutput(chars=1200)


def _embedded(inp: IngestFileInput) -> EmbedFileOutput:
    return EmbedFileOutput(chunks=3, usage_bytes=2048)


def _unsupported(inp: IngestFileInput) -> ParseFileOutput:
    raise ApplicationError(
        "files of type .xyz are not supported", type="unsupported_file", non_retryable=True
    )


def _embedder_down(inp: IngestFileInput) -> EmbedFileOutput:
    raise RuntimeError("embedding model unavailable")  # retried until INGEST_RETRY gives up


def _marked(inp: MarkFileInput) -> None:
    return None


def _receiver_down_for(down: timedelta) -> Behaviour:
    """deliver_webhook against a receiver that answers 503 until `down` has passed."""

    def deliver(inp: DeliverWebhookInput) -> DeliverWebhookOutput:
        info = activity.info()
        if info.current_attempt_scheduled_time - info.scheduled_time < down:
            raise ApplicationError("HTTP 503: receiver down", type="WebhookDeliveryError")
        return DeliverWebhookOutput(status="delivered", attempts=info.attempt, http_status=200)

    return deliver


def _active_runs(total: int, page: int = 10) -> Behaviour:
    """reconcile_runs over active runs with seq 1..total, `page` of them after `after_seq`."""

    def reconcile(inp: ReconcileBatchInput) -> ReconcileBatchOutput:
        seqs = list(range(inp.after_seq + 1, min(inp.after_seq + page, total) + 1))
        last = seqs[-1] if len(seqs) == page else None
        return ReconcileBatchOutput(checked=len(seqs), settled=len(seqs) // 5, last_seq=last)

    return reconcile


def paths() -> dict[str, WorkflowPath]:
    """Every path: name (`<workflow family>_<path>`, the history's file name) -> its script."""
    return {
        "ingest_completed": WorkflowPath(
            IngestFileWorkflow.run, INGEST, {"parse_file": _parsed, "embed_file": _embedded}
        ),
        "ingest_unsupported": WorkflowPath(
            IngestFileWorkflow.run, INGEST, {"parse_file": _unsupported, "mark_file": _marked}
        ),
        "ingest_server_error": WorkflowPath(
            IngestFileWorkflow.run,
            INGEST,
            {"parse_file": _parsed, "embed_file": _embedder_down, "mark_file": _marked},
        ),
        "ingest_cancelled": WorkflowPath(
            IngestFileWorkflow.run,
            INGEST,
            {"parse_file": BLOCK, "mark_file": _marked},
            cancel_when=lambda f: f.called("parse_file"),
        ),
        "search_found": WorkflowPath(
            VectorStoreSearchWorkflow.run,
            FileSearchInput(project_id="proj_1", query="what is the answer", vector_store_ids=["vs_1"]),
            {"file_search": lambda inp: FileSearchOutput(results=[HIT], vector_store_ids=["vs_1"])},
        ),
        "input_tokens_counted": WorkflowPath(
            CountInputTokensWorkflow.run,
            CountInputTokensInput(
                project_id="proj_1", request_id="itc_1", inference_task_queue=INFERENCE_QUEUE
            ),
            {"count_input_tokens": lambda inp: 42},
        ),
        "webhook_delivered": WorkflowPath(  # the receiver is down for an hour of a 3-day window
            WebhookDeliveryWorkflow.run,
            DeliverWebhookInput(event_id="evt_1", webhook_id="wh_1"),
            {"deliver_webhook": _receiver_down_for(timedelta(hours=1))},
        ),
        "webhook_window_spent": WorkflowPath(  # down for good: the window ends the retries
            WebhookDeliveryWorkflow.run,
            DeliverWebhookInput(event_id="evt_1", webhook_id="wh_1", delivery_window_seconds=6 * 3600),
            {"deliver_webhook": _receiver_down_for(timedelta(days=365)), "fail_webhook_delivery": _marked},
        ),
        "reconcile_to_the_end": WorkflowPath(
            ReconcileRunsWorkflow.run,
            ReconcileRunsInput(max_batches=10),
            {"reconcile_runs": _active_runs(25)},
        ),
        "reconcile_bounded": WorkflowPath(
            ReconcileRunsWorkflow.run, ReconcileRunsInput(max_batches=2), {"reconcile_runs": _active_runs(35)}
        ),
        "reconcile_resumed": WorkflowPath(  # the second tick starts where the first stopped
            ReconcileRunsWorkflow.run,
            ReconcileRunsInput(max_batches=2),
            {"reconcile_runs": _active_runs(35)},
            ticks=2,
        ),
    }
