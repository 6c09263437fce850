"""RunWorkflow paths driven by fake activities registered under the real names.

Shared by the workflow tests (which assert what each path does) and `tests/record_history.py`
(which records each path's history once, into a versioned file that is never overwritten).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from assistants.payloads import (
    BuiltinToolsInput,
    BuiltinToolsOutput,
    ChatMessage,
    FinishRunInput,
    GenerateInput,
    GenerateOutput,
    Prompt,
    PromptInput,
    RunInput,
    RunPlan,
    RunRef,
    StepResult,
    ToolCall,
    ToolCallsInput,
    ToolOutputsInput,
)
from workflows.run import RunWorkflow

QUEUE = "test-runs"

TEXT = GenerateOutput(
    text="Hello", prompt_tokens=5, completion_tokens=2, finish_reason="stop", created_message=True
)
CALL = GenerateOutput(
    text="",
    prompt_tokens=5,
    completion_tokens=9,
    finish_reason="tool_calls",
    tool_calls=[ToolCall(id="call_1", type="function", name="get_weather", arguments='{"city": "Paris"}')],
)
CALL_2 = GenerateOutput(
    text="",
    prompt_tokens=7,
    completion_tokens=9,
    finish_reason="tool_calls",
    tool_calls=[ToolCall(id="call_2", type="function", name="get_weather", arguments='{"city": "Rome"}')],
)
CODE = GenerateOutput(
    text="",
    prompt_tokens=5,
    completion_tokens=12,
    finish_reason="tool_calls",
    tool_calls=[ToolCall(id="call_c", type="code_interpreter", name="python", arguments='{"code": "6*7"}')],
)
SEARCH = GenerateOutput(
    text="",
    prompt_tokens=5,
    completion_tokens=8,
    finish_reason="tool_calls",
    tool_calls=[ToolCall(id="call_s", type="file_search", name="file_search", arguments='{"query": "x"}')],
)
TRUNCATED = GenerateOutput(
    text="Hel", prompt_tokens=5, completion_tokens=3, finish_reason="length", created_message=True
)
BLOCK = GenerateOutput(text="", prompt_tokens=0, completion_tokens=0, finish_reason="block")
FAIL = GenerateOutput(text="", prompt_tokens=0, completion_tokens=0, finish_reason="fail")
REFUSE = GenerateOutput(text="", prompt_tokens=0, completion_tokens=0, finish_reason="refuse")


@dataclass
class FakeRun:
    """Scripted model turns and a record of what the workflow asked the activities to do."""

    turns: list[GenerateOutput]
    plan: RunPlan | None = field(
        default_factory=lambda: RunPlan(
            model="m",
            temperature=0,
            top_p=1,
            max_prompt_tokens=None,
            max_completion_tokens=None,
            inference_task_queue=QUEUE,
        )
    )
    started: list[RunRef] = field(default_factory=list)
    finished: list[FinishRunInput] = field(default_factory=list)
    generated: list[GenerateInput] = field(default_factory=list)
    builtin: list[BuiltinToolsInput] = field(default_factory=list)
    required: list[ToolCallsInput] = field(default_factory=list)
    recorded: list[ToolOutputsInput] = field(default_factory=list)
    generating: bool = False

    def activities(self) -> list[Any]:
        @activity.defn(name="start_run")
        async def start_run(ref: RunRef) -> RunPlan | None:
            self.started.append(ref)
            return self.plan

        @activity.defn(name="build_prompt")
        async def build_prompt(inp: PromptInput) -> Prompt:
            return Prompt(messages=[ChatMessage(role="user", content="hi")])

        @activity.defn(name="generate")
        async def generate(inp: GenerateInput) -> GenerateOutput:
            self.generated.append(inp)
            out = self.turns[len(self.generated) - 1]
            if out.finish_reason == "block":  # generates until the run is cancelled
                self.generating = True
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            if out.finish_reason == "fail":
                raise ApplicationError("the model is gone", type="ModelNotFound", non_retryable=True)
            if out.finish_reason == "refuse":
                raise ApplicationError("the model takes no images", type="InvalidRequest", non_retryable=True)
            return out

        @activity.defn(name="complete_step")
        async def complete_step(res: StepResult) -> None:
            return None

        @activity.defn(name="run_builtin_tools")
        async def run_builtin_tools(inp: BuiltinToolsInput) -> BuiltinToolsOutput:
            self.builtin.append(inp)
            return BuiltinToolsOutput()

        @activity.defn(name="require_action")
        async def require_action(inp: ToolCallsInput) -> None:
            self.required.append(inp)

        @activity.defn(name="record_tool_outputs")
        async def record_tool_outputs(inp: ToolOutputsInput) -> None:
            self.recorded.append(inp)

        @activity.defn(name="finish_run")
        async def finish_run(inp: FinishRunInput) -> None:
            self.finished.append(inp)

        return [
            start_run,
            build_prompt,
            generate,
            complete_step,
            run_builtin_tools,
            require_action,
            record_tool_outputs,
            finish_run,
        ]


Body = Callable[[WorkflowHandle[Any, Any]], Awaitable[Any]]


async def run_scenario(env: WorkflowEnvironment, fake: FakeRun, body: Body) -> Any:
    async with Worker(env.client, task_queue=QUEUE, workflows=[RunWorkflow], activities=fake.activities()):
        run_id = f"run_{uuid.uuid4().hex}"
        handle = await env.client.start_workflow(
            RunWorkflow.run,
            RunInput(run_id=run_id, thread_id="t", project_id="p"),
            id=run_id,
            task_queue=QUEUE,
        )
        return await body(handle)


async def wait_for(pred: Callable[[], Any], limit_s: float = 10.0) -> None:
    for _ in range(int(limit_s / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def outputs_update(*call_ids: str) -> ToolOutputsInput:
    """What the API sends once it stored the outputs: call ids only."""
    return ToolOutputsInput(
        run_id="", project_id="", step_id="", outputs={}, call_ids=list(call_ids), by_reference=True
    )


async def result_and_history(handle: WorkflowHandle[Any, Any]) -> Any:
    try:
        await handle.result()
    except WorkflowFailureError:
        pass  # cancelled runs end as a cancelled workflow
    return await handle.fetch_history()


def _answer(fake: FakeRun, *call_ids: str) -> Body:
    async def body(handle: WorkflowHandle[Any, Any]) -> Any:
        for n, call_id in enumerate(call_ids):
            await wait_for(lambda n=n: len(fake.required) > n)  # type: ignore[misc]
            await handle.execute_update(RunWorkflow.submit_tool_outputs, outputs_update(call_id))
        return await result_and_history(handle)

    return body


def _cancel_when(fake: FakeRun, ready: Callable[[], Any]) -> Body:
    async def body(handle: WorkflowHandle[Any, Any]) -> Any:
        await wait_for(ready)
        await handle.cancel()
        return await result_and_history(handle)

    return body


def scenarios() -> dict[str, tuple[FakeRun, Callable[[FakeRun], Body]]]:
    """Every path of the workflow: name -> (scripted run, what the client does)."""
    long_wait = FakeRun(turns=[CALL])
    assert long_wait.plan is not None
    long_wait.plan.expires_seconds = 3 * 24 * 3600
    budget = FakeRun(turns=[TRUNCATED])
    assert budget.plan is not None
    budget.plan.max_completion_tokens = 3
    return {
        "plain": (FakeRun(turns=[TEXT]), lambda f: result_and_history),
        "max_tokens": (budget, lambda f: result_and_history),
        "function": (FakeRun(turns=[CALL, TEXT]), lambda f: _answer(f, "call_1")),
        "expiry": (long_wait, lambda f: result_and_history),
        "cancel_queued": (FakeRun(turns=[], plan=None), lambda f: result_and_history),
        "cancel_generating": (FakeRun(turns=[BLOCK]), lambda f: _cancel_when(f, lambda: f.generating)),
        "cancel_requires_action": (FakeRun(turns=[CALL]), lambda f: _cancel_when(f, lambda: f.required)),
        "code_interpreter": (FakeRun(turns=[CODE, TEXT]), lambda f: result_and_history),
        "file_search": (FakeRun(turns=[SEARCH, TEXT]), lambda f: result_and_history),
        "multi_turn": (FakeRun(turns=[CALL, CALL_2, TEXT]), lambda f: _answer(f, "call_1", "call_2")),
        "failure": (FakeRun(turns=[FAIL]), lambda f: result_and_history),
        "invalid_request": (FakeRun(turns=[REFUSE]), lambda f: result_and_history),
    }
