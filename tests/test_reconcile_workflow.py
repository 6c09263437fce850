"""ReconcileRunsWorkflow and its schedule, against Temporal's dev server (schedules need the real
server) with a fake `reconcile_runs` activity registered under the real name: a tick pages through
the active runs up to its bound, the next tick resumes from where it stopped, and ensuring the
schedule twice updates it instead of failing."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from assistants.payloads import (
    ReconcileBatchInput,
    ReconcileBatchOutput,
    ReconcileRunsInput,
    ReconcileRunsOutput,
)
from assistants.settings import Settings
from worker.schedules import ensure_reconcile_schedule
from workflows import reconcile_options as options
from workflows.reconcile import ReconcileRunsWorkflow

pytestmark = pytest.mark.timeout(120)
PAGE = 10


class FakeRows:
    """Active runs with seq 1..total; a page is PAGE of them after `after_seq`."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.calls: list[int] = []
        self._waiters: list[tuple[int, asyncio.Event]] = []

    async def wait_calls(self, n: int, within: float) -> None:
        """Until `n` batches were read; fails after `within` seconds."""
        reached = asyncio.Event()
        self._waiters.append((n, reached))
        if len(self.calls) >= n:
            reached.set()
        try:
            await asyncio.wait_for(reached.wait(), within)
        except TimeoutError:
            raise AssertionError(f"{n} batches not read within {within:.0f}s: {self.calls}") from None

    @activity.defn(name="reconcile_runs")
    async def reconcile_runs(self, inp: ReconcileBatchInput) -> ReconcileBatchOutput:
        self.calls.append(inp.after_seq)
        for n, reached in self._waiters:
            if len(self.calls) >= n:
                reached.set()
        seqs = list(range(inp.after_seq + 1, min(inp.after_seq + PAGE, self.total) + 1))
        full = len(seqs) == PAGE
        return ReconcileBatchOutput(checked=len(seqs), settled=1, last_seq=seqs[-1] if full else None)


@pytest.fixture(scope="module")
async def env():
    path = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=path) as env:
        yield env


def _worker(client: Client, queue: str, rows: FakeRows) -> Worker:
    return Worker(
        client, task_queue=queue, workflows=[ReconcileRunsWorkflow], activities=[rows.reconcile_runs]
    )


async def test_a_tick_is_bounded_and_reports_where_it_stopped(env: WorkflowEnvironment) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    rows = FakeRows(total=55)
    async with _worker(env.client, queue, rows):
        out = await env.client.execute_workflow(
            ReconcileRunsWorkflow.run, ReconcileRunsInput(max_batches=3), id=f"t-{queue}", task_queue=queue
        )
        assert out == ReconcileRunsOutput(checked=30, settled=3, next_seq=30)
        assert rows.calls == [0, 10, 20]
        # A scan that reaches the newest run starts over from the oldest next time.
        out = await env.client.execute_workflow(
            ReconcileRunsWorkflow.run, ReconcileRunsInput(max_batches=50), id=f"u-{queue}", task_queue=queue
        )
        assert out.checked == 55 and out.next_seq == 0


async def test_schedule_ticks_resume_and_ensure_is_idempotent(env: WorkflowEnvironment) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    settings = Settings(runs_task_queue=queue, reconcile_interval_seconds=1)
    rows = FakeRows(total=(options.MAX_BATCHES_PER_TICK + 5) * PAGE)
    await ensure_reconcile_schedule(env.client, settings)
    handle = env.client.get_schedule_handle(options.RECONCILE_SCHEDULE_ID)
    try:
        await handle.pause(note="test")
        # Ensuring again (a second worker, or a restart with new settings) updates, keeps paused.
        await ensure_reconcile_schedule(
            env.client, settings.model_copy(update={"reconcile_interval_seconds": 2})
        )
        described = await handle.describe()
        assert described.schedule.state.paused
        assert described.schedule.spec.intervals[0].every == timedelta(seconds=2)
        await ensure_reconcile_schedule(env.client, settings)
        await handle.unpause()
        async with _worker(env.client, queue, rows):
            await rows.wait_calls(options.MAX_BATCHES_PER_TICK + 6, within=20)
        first_tick = [PAGE * i for i in range(options.MAX_BATCHES_PER_TICK)]
        # The second tick starts where the first stopped, reaches the end, the third starts over.
        second_tick = [
            PAGE * i for i in range(options.MAX_BATCHES_PER_TICK, options.MAX_BATCHES_PER_TICK + 6)
        ]
        assert rows.calls[: len(first_tick) + len(second_tick)] == first_tick + second_tick, rows.calls
        described = await handle.describe()
        assert described.schedule.policy.overlap.name == "SKIP"
    finally:
        await handle.delete()
