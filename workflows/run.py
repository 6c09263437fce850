"""RunWorkflow: one Assistants API run, durable. Workflow id = run id.

Pure orchestration: every read or write of the world is an activity. The workflow waits for tool
outputs (requires_action) in Temporal, not in any process's memory, so a run can wait days
across restarts while holding no worker slot.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from assistants.ids import derived_id
    from assistants.payloads import (
        BuiltinToolsInput,
        FinishRunInput,
        GenerateInput,
        GenerateOutput,
        RunInput,
        RunPlan,
        RunRef,
        RunResult,
        ToolCall,
        ToolCallsInput,
        ToolOutputsInput,
    )
    from workflows import options
    from workflows.activity_refs import InferenceActivities, StoreActivities, ToolActivities

from workflows.run_v1 import turns_v1

# Patch markers, one per change to the workflow's logic (see README, "Changing a workflow").
HISTORY_BY_REFERENCE = "history-by-reference"
# A turn refused as an invalid request (e.g. images for a text-only model) fails the run with
# `invalid_prompt`, the client's error, rather than `server_error`.
INVALID_PROMPT_CODE = "invalid-prompt-code"


@workflow.defn
class RunWorkflow:
    def __init__(self) -> None:
        self._pending_calls: list[str] = []
        self._tool_outputs: dict[str, str] | None = None
        self._outputs_recorded = False

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        # Runs started before this marker keep their old turn loop (workflows/run_v1.py).
        by_reference = workflow.patched(HISTORY_BY_REFERENCE)
        ref = RunRef(run_id=inp.run_id, project_id=inp.project_id, by_reference=by_reference)
        try:
            plan = await self._store(StoreActivities.start_run, ref)
            if plan is None:  # cancelled before it started
                return RunResult(status="cancelled")
            if not by_reference:
                return await turns_v1(self, inp, plan)
            return await self._turns(inp, plan)
        except asyncio.CancelledError:
            await self._finish(inp, "cancelled")
            raise
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The run was cancelled while an activity was running: Temporal cancelled it.
                await self._finish(inp, "cancelled")
                raise asyncio.CancelledError() from err
            cause = err.cause
            message = str(cause.message if isinstance(cause, ApplicationError) else cause or err)
            code = "server_error"
            if (
                isinstance(cause, ApplicationError)
                and cause.type == "InvalidRequest"
                and workflow.patched(INVALID_PROMPT_CODE)
            ):
                code = "invalid_prompt"
            await self._finish(inp, "failed", error_code=code, error_message=message)
            return RunResult(status="failed")

    async def _turns(self, inp: RunInput, plan: RunPlan) -> RunResult:
        """One model turn after another, by reference: every activity reads what it needs from
        Postgres by (run, turn) and writes its result there, so history holds ids and counts only
        and its size does not grow with the thread, the tool outputs or the model's text."""
        completion_used = 0
        for turn in range(options.MAX_TURNS):
            budget = (
                None if plan.max_completion_tokens is None else plan.max_completion_tokens - completion_used
            )
            message_id = derived_id("msg", inp.run_id, turn)
            step_id = derived_id("step", inp.run_id, turn)
            out: GenerateOutput = await workflow.execute_activity_method(
                InferenceActivities.generate,
                GenerateInput(
                    run_id=inp.run_id,
                    project_id=inp.project_id,
                    thread_id=inp.thread_id,
                    assistant_id=plan.assistant_id,
                    turn=turn,
                    model=plan.model,
                    messages=[],
                    message_id=message_id,
                    step_id=step_id,
                    temperature=plan.temperature,
                    top_p=plan.top_p,
                    max_new_tokens=budget,
                    max_prompt_tokens=plan.max_prompt_tokens,
                    parallel_tool_calls=plan.parallel_tool_calls,
                    by_reference=True,
                ),
                task_queue=plan.inference_task_queue,
                schedule_to_close_timeout=options.GENERATE_SCHEDULE_TO_CLOSE,
                start_to_close_timeout=options.GENERATE_TIMEOUT,
                heartbeat_timeout=options.GENERATE_HEARTBEAT,
                retry_policy=options.GENERATE_RETRY,
            )
            completion_used += out.completion_tokens
            if out.finish_reason == "prompt_too_long":
                await self._finish(inp, "incomplete", incomplete_reason="max_prompt_tokens")
                return RunResult(status="incomplete")
            if out.finish_reason == "length" and budget is not None:
                await self._finish(inp, "incomplete", incomplete_reason="max_completion_tokens")
                return RunResult(status="incomplete")
            if not out.tool_calls:
                await self._finish(inp, "completed")
                return RunResult(status="completed")
            builtin = [c for c in out.tool_calls if c.type != "function"]
            functions = [c for c in out.tool_calls if c.type == "function"]
            tool_step_id = out.tool_step_id or step_id
            if builtin:
                await workflow.execute_activity_method(
                    ToolActivities.run_builtin_tools,
                    BuiltinToolsInput(
                        run_id=inp.run_id,
                        project_id=inp.project_id,
                        thread_id=inp.thread_id,
                        step_id=tool_step_id,
                        calls=builtin,
                        complete_step=not functions,
                        by_reference=True,
                    ),
                    schedule_to_close_timeout=options.TOOLS_SCHEDULE_TO_CLOSE,
                    start_to_close_timeout=options.TOOLS_TIMEOUT,
                    heartbeat_timeout=options.TOOLS_HEARTBEAT,
                    retry_policy=options.TOOLS_RETRY,
                )
            if functions:
                waited = await self._await_tool_outputs(inp, plan, tool_step_id, functions, by_reference=True)
                if waited is None:
                    await self._finish(inp, "expired")
                    return RunResult(status="expired")
        await self._finish(
            inp,
            "failed",
            error_code="server_error",
            error_message="the model kept calling tools; turn limit reached",
        )
        return RunResult(status="failed")

    async def _await_tool_outputs(
        self, inp: RunInput, plan: RunPlan, step_id: str, calls: list[ToolCall], by_reference: bool = False
    ) -> dict[str, str] | None:
        """Pause in requires_action until outputs for every call arrive, or the run expires.

        By reference, the outputs are already in run_tool_results (the API stores them before it
        sends the update) and the returned dict is empty."""
        self._pending_calls = [c.id for c in calls]
        self._tool_outputs = None
        await self._store(
            StoreActivities.require_action,
            ToolCallsInput(
                run_id=inp.run_id,
                project_id=inp.project_id,
                step_id=step_id,
                tool_calls=calls,
                expires_seconds=plan.expires_seconds,
            ),
        )
        try:
            await workflow.wait_condition(
                lambda: self._tool_outputs is not None, timeout=timedelta(seconds=plan.expires_seconds)
            )
        except TimeoutError:
            return None
        outputs: dict[str, str] = self._tool_outputs or {}
        self._pending_calls = []
        await self._store(
            StoreActivities.record_tool_outputs,
            ToolOutputsInput(
                run_id=inp.run_id,
                project_id=inp.project_id,
                step_id=step_id,
                outputs=outputs,
                by_reference=by_reference,
            ),
        )
        self._outputs_recorded = True
        return outputs

    @workflow.update
    async def submit_tool_outputs(self, outputs: ToolOutputsInput) -> None:
        # Returns once the outputs are recorded, so the caller reads the run already in_progress
        # (the SDK's submit_tool_outputs_and_poll stops polling on requires_action).
        self._outputs_recorded = False
        self._tool_outputs = dict(outputs.outputs)
        await workflow.wait_condition(lambda: self._outputs_recorded)

    @submit_tool_outputs.validator
    def _validate_tool_outputs(self, outputs: ToolOutputsInput) -> None:
        if not self._pending_calls or self._tool_outputs is not None:
            raise ApplicationError(
                "Runs in status other than requires_action do not accept tool outputs.", type="InvalidRequest"
            )
        given = list(outputs.call_ids) if outputs.by_reference else list(outputs.outputs)
        unknown = [c for c in given if c not in self._pending_calls]
        if unknown:
            raise ApplicationError(f"Unknown tool_call_id: {unknown[0]}", type="InvalidRequest")
        missing = [c for c in self._pending_calls if c not in given]
        if missing:
            raise ApplicationError(
                f"Missing tool output for tool_call_id: {missing[0]}", type="InvalidRequest"
            )

    @workflow.query
    def pending_tool_calls(self) -> list[str]:
        return list(self._pending_calls)

    async def _finish(
        self,
        inp: RunInput,
        status: str,
        *,
        incomplete_reason: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        await self._store(
            StoreActivities.finish_run,
            FinishRunInput(
                run_id=inp.run_id,
                project_id=inp.project_id,
                status=status,
                incomplete_reason=incomplete_reason,
                error_code=error_code,
                error_message=error_message,
            ),
        )

    async def _store(self, method, arg):  # type: ignore[no-untyped-def]
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=options.STORE_TIMEOUT, retry_policy=options.STORE_RETRY
        )
