"""RunWorkflow's turn loop before "history-by-reference" (frozen; do not edit).

Runs started before that patch replay and continue through this code: their histories carry the
prompt (`build_prompt`'s result and `GenerateInput.messages`), the model's text and the tool
outputs. Delete it (and `deprecate_patch` the marker) once no such run can still be open: the
longest a run may wait is `max_run_expires_seconds`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from assistants.ids import derived_id
    from assistants.payloads import (
        BuiltinToolsInput,
        ChatMessage,
        GenerateInput,
        GenerateOutput,
        PromptInput,
        RunInput,
        RunPlan,
        RunResult,
        StepResult,
    )
    from workflows import options
    from workflows.activity_refs import InferenceActivities, StoreActivities, ToolActivities

if TYPE_CHECKING:
    from workflows.run import RunWorkflow


async def turns_v1(self: RunWorkflow, inp: RunInput, plan: RunPlan) -> RunResult:
    completion_used = 0
    extra: list[ChatMessage] = []  # tool calls and outputs of this run, appended turn by turn
    for turn in range(options.MAX_TURNS):
        prompt = await self._store(
            StoreActivities.build_prompt, PromptInput(run_id=inp.run_id, project_id=inp.project_id)
        )
        budget = None if plan.max_completion_tokens is None else plan.max_completion_tokens - completion_used
        out: GenerateOutput = await workflow.execute_activity_method(
            InferenceActivities.generate,
            GenerateInput(
                run_id=inp.run_id,
                project_id=inp.project_id,
                thread_id=inp.thread_id,
                assistant_id=plan.assistant_id,
                turn=turn,
                model=plan.model,
                messages=prompt.messages + extra,
                message_id=derived_id("msg", inp.run_id, turn),
                step_id=derived_id("step", inp.run_id, turn),
                temperature=plan.temperature,
                top_p=plan.top_p,
                max_new_tokens=budget,
                max_prompt_tokens=plan.max_prompt_tokens,
                truncation=prompt.truncation,
                last_messages=prompt.last_messages,
                response_format=plan.response_format,
                tools=plan.tools,
                tool_choice=plan.tool_choice if turn == 0 else "auto",
                parallel_tool_calls=plan.parallel_tool_calls,
            ),
            task_queue=plan.inference_task_queue,
            start_to_close_timeout=options.GENERATE_TIMEOUT,
            heartbeat_timeout=options.GENERATE_HEARTBEAT,
            retry_policy=options.GENERATE_RETRY,
        )
        completion_used += out.completion_tokens
        step = StepResult(
            run_id=inp.run_id,
            project_id=inp.project_id,
            turn=turn,
            output=out,
            message_id=derived_id("msg", inp.run_id, turn),
            step_id=derived_id("step", inp.run_id, turn),
        )
        await self._store(StoreActivities.complete_step, step)
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
        outputs: dict[str, str] = {}
        if builtin:
            done = await workflow.execute_activity_method(
                ToolActivities.run_builtin_tools,
                BuiltinToolsInput(
                    run_id=inp.run_id,
                    project_id=inp.project_id,
                    thread_id=inp.thread_id,
                    step_id=out.tool_step_id or step.step_id,
                    calls=builtin,
                    complete_step=not functions,
                ),
                start_to_close_timeout=options.TOOLS_TIMEOUT,
                heartbeat_timeout=options.TOOLS_HEARTBEAT,
                retry_policy=options.TOOLS_RETRY,
            )
            outputs = dict(done.outputs)
        if functions:
            waited = await self._await_tool_outputs(inp, plan, out.tool_step_id or step.step_id, functions)
            if waited is None:
                await self._finish(inp, "expired")
                return RunResult(status="expired")
            outputs.update(waited)
        extra += [
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=[
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in out.tool_calls
                ],
            )
        ]
        extra += [ChatMessage(role="tool", content=outputs[c.id], tool_call_id=c.id) for c in out.tool_calls]
    await self._finish(
        inp,
        "failed",
        error_code="server_error",
        error_message="the model kept calling tools; turn limit reached",
    )
    return RunResult(status="failed")
