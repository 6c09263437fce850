"""Temporal Schedules the server relies on, ensured by every runs worker at start.

Creating one that exists is not an error: it is updated to this process's settings instead (its
paused/unpaused state is kept), so any number of workers, on a dev server or a cluster, can start
in any order.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from assistants.payloads import ReconcileRunsInput
from assistants.settings import Settings
from workflows import reconcile_options as options
from workflows.reconcile import ReconcileRunsWorkflow


def reconcile_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileRunsWorkflow.run,
            ReconcileRunsInput(max_batches=options.MAX_BATCHES_PER_TICK),
            id=options.RECONCILE_SCHEDULE_ID,
            task_queue=settings.runs_task_queue,
            execution_timeout=options.TICK_TIMEOUT,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.reconcile_interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=options.CATCHUP_WINDOW),
    )


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    schedule = reconcile_schedule(settings)
    try:
        await client.create_schedule(options.RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(
                schedule=dataclasses.replace(schedule, state=current.description.schedule.state)
            )

        await client.get_schedule_handle(options.RECONCILE_SCHEDULE_ID).update(keep_state)
