"""ReconcileRunsWorkflow: one tick of the `assistants-reconcile-runs` Temporal Schedule.

It pages through the active runs (oldest first, by seq) with the `reconcile_runs` activity, which
settles those whose workflow is missing or closed. A tick checks at most MAX_BATCHES_PER_TICK
pages; the next tick resumes where it stopped (the schedule hands each tick the previous tick's
result), so every active run is looked at even when there are more than one tick can check.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from assistants.payloads import ReconcileBatchInput, ReconcileRunsInput, ReconcileRunsOutput
    from workflows import reconcile_options as options
    from workflows.activity_refs import ReconcileActivities


@workflow.defn
class ReconcileRunsWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileRunsInput) -> ReconcileRunsOutput:
        previous = (
            workflow.get_last_completion_result(ReconcileRunsOutput)
            if workflow.has_last_completion_result()
            else None
        )
        after = previous.next_seq if isinstance(previous, ReconcileRunsOutput) else 0
        out = ReconcileRunsOutput()
        for _ in range(inp.max_batches):
            batch = await workflow.execute_activity_method(
                ReconcileActivities.reconcile_runs,
                ReconcileBatchInput(after_seq=after),
                start_to_close_timeout=options.RECONCILE_TIMEOUT,
                retry_policy=options.RECONCILE_RETRY,
            )
            out.checked += batch.checked
            out.settled += batch.settled
            if batch.last_seq is None:  # reached the newest active run: start over next tick
                after = 0
                break
            after = batch.last_seq
        out.next_seq = after
        return out
