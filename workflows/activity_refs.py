"""What the workflows schedule: each activity's name and signature, without its implementation.

The workflows call `execute_activity_method(StoreActivities.start_run, ...)` on these interfaces,
not on the classes in `activities/`, so importing a workflow module (the API does, for its typed
run, update and query references) loads no activity code, parser or model client. The history
records only the activity's name, so the commands are the same as with the real classes. The worker
registers the real classes' bound methods; `tests/test_activity_refs.py` checks that every one of
them has an interface here with the same name, argument and result types.
"""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

from assistants.payloads import (
    BuiltinToolsInput,
    BuiltinToolsOutput,
    CountInputTokensInput,
    DeliverWebhookInput,
    DeliverWebhookOutput,
    EmbedFileOutput,
    FileSearchInput,
    FileSearchOutput,
    FinishRunInput,
    GenerateInput,
    GenerateOutput,
    IngestFileInput,
    MarkFileInput,
    ParseFileOutput,
    Prompt,
    PromptInput,
    ReconcileBatchInput,
    ReconcileBatchOutput,
    RunPlan,
    RunRef,
    StepResult,
    ToolCallsInput,
    ToolOutputsInput,
    WebhookDeliveryFailed,
)


class StoreActivities(Protocol):
    """activities/store.py: a run's rows and status."""

    @activity.defn(name="start_run")
    async def start_run(self, ref: RunRef) -> RunPlan | None: ...

    @activity.defn(name="build_prompt")
    async def build_prompt(self, inp: PromptInput) -> Prompt: ...

    @activity.defn(name="complete_step")
    async def complete_step(self, res: StepResult) -> None: ...

    @activity.defn(name="require_action")
    async def require_action(self, inp: ToolCallsInput) -> None: ...

    @activity.defn(name="record_tool_outputs")
    async def record_tool_outputs(self, inp: ToolOutputsInput) -> None: ...

    @activity.defn(name="finish_run")
    async def finish_run(self, inp: FinishRunInput) -> None: ...


class InferenceActivities(Protocol):
    """activities/inference.py, on the inference task queue: the model's turns and token counts."""

    @activity.defn(name="generate")
    async def generate(self, inp: GenerateInput) -> GenerateOutput: ...

    @activity.defn(name="count_input_tokens")
    async def count_input_tokens(self, inp: CountInputTokensInput) -> int: ...


class ToolActivities(Protocol):
    """activities/tools.py: built-in tool calls (code interpreter, file search)."""

    @activity.defn(name="run_builtin_tools")
    async def run_builtin_tools(self, inp: BuiltinToolsInput) -> BuiltinToolsOutput: ...


class RetrievalActivities(Protocol):
    """activities/retrieval.py: ingestion of a file into a vector store, and search."""

    @activity.defn(name="parse_file")
    async def parse_file(self, inp: IngestFileInput) -> ParseFileOutput: ...

    @activity.defn(name="embed_file")
    async def embed_file(self, inp: IngestFileInput) -> EmbedFileOutput: ...

    @activity.defn(name="mark_file")
    async def mark_file(self, inp: MarkFileInput) -> None: ...

    @activity.defn(name="file_search")
    async def file_search(self, inp: FileSearchInput) -> FileSearchOutput: ...


class WebhookActivities(Protocol):
    """activities/webhooks.py: one POST of an event, and recording a delivery that gave up."""

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, inp: DeliverWebhookInput) -> DeliverWebhookOutput: ...

    @activity.defn(name="fail_webhook_delivery")
    async def fail_webhook_delivery(self, inp: WebhookDeliveryFailed) -> None: ...


class ReconcileActivities(Protocol):
    """activities/reconcile.py: settle one page of active runs whose workflow is gone."""

    @activity.defn(name="reconcile_runs")
    async def reconcile_runs(self, inp: ReconcileBatchInput) -> ReconcileBatchOutput: ...
