"""CountInputTokensWorkflow: POST /v1/responses/input_tokens. Rendering and counting a prompt needs
the model's tokenizer and chat template, which only inference workers load, so the count is one
short activity on the inference task queue behind a workflow the API executes and awaits. Its
history holds the request's row id and the count, never the input."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from assistants.payloads import CountInputTokensInput
    from workflows.activity_refs import InferenceActivities

COUNT_TIMEOUT = timedelta(seconds=60)
COUNT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
    non_retryable_error_types=["InvalidRequest"],
)
# The API's whole wait for a count.
COUNT_WORKFLOW_TIMEOUT = timedelta(seconds=120)


@workflow.defn
class CountInputTokensWorkflow:
    @workflow.run
    async def run(self, inp: CountInputTokensInput) -> int:
        return await workflow.execute_activity_method(
            InferenceActivities.count_input_tokens,
            inp,
            task_queue=inp.inference_task_queue,
            start_to_close_timeout=COUNT_TIMEOUT,
            retry_policy=COUNT_RETRY,
        )
