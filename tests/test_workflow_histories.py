"""Every workflow type but RunWorkflow (tests/test_workflow_run.py has its own): each path does
what its name says, with fake activities under the real names (tests/workflow_scenarios_others.py);
each path's history is committed (tests/record_history.py) and replays through the real workflow
classes; a history whose commands differ from the code fails to replay; and no workflow type in
workflows/ is left without a committed history."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

import workflows
from assistants.payloads import (
    DeliverWebhookOutput,
    FileSearchOutput,
    IngestFileResult,
    ReconcileRunsOutput,
)
from tests.record_history import recorders
from tests.workflow_scenarios_others import HIT, WORKFLOWS, Outcome, paths, run_path
from workflows import ingest_options
from workflows.run import RunWorkflow

pytestmark = pytest.mark.timeout(120)
HISTORIES = Path(__file__).parent / "histories"
# Every committed history except RunWorkflow's (replayed by test_workflow_run.py) and the one
# that is broken on purpose.
OTHERS = sorted(
    p
    for p in HISTORIES.glob("*.json")
    if not p.name.startswith("run_") and p.name != "nondeterministic_run.json"
)


def _names(outcome: Outcome) -> list[str]:
    return [name for name, _ in outcome.calls]


def _inputs(outcome: Outcome, activity: str) -> list[Any]:
    return [inp for name, inp in outcome.calls if name == activity]


async def test_ingestion_paths() -> None:
    done = await run_path(paths()["ingest_completed"])
    assert (done.status, done.result) == ("completed", IngestFileResult(status="completed", chunks=3))
    assert _names(done) == ["parse_file", "embed_file"]

    unsupported = await run_path(paths()["ingest_unsupported"])
    assert unsupported.result == IngestFileResult(
        status="failed", error_code="unsupported_file", error_message="files of type .xyz are not supported"
    )
    assert _names(unsupported) == ["parse_file", "mark_file"]  # a permanent error is not retried
    [mark] = _inputs(unsupported, "mark_file")
    assert (mark.status, mark.error_code) == ("failed", "unsupported_file")

    down = await run_path(paths()["ingest_server_error"])
    assert down.result == IngestFileResult(
        status="failed", error_code="server_error", error_message="embedding model unavailable"
    )
    attempts = ingest_options.INGEST_RETRY.maximum_attempts
    assert _names(down) == ["parse_file"] + ["embed_file"] * attempts + ["mark_file"]

    cancelled = await run_path(paths()["ingest_cancelled"])
    assert (cancelled.status, cancelled.result) == ("canceled", None)
    assert _names(cancelled) == ["parse_file", "mark_file"]
    assert _inputs(cancelled, "mark_file")[0].status == "cancelled"


async def test_search_and_token_count_paths() -> None:
    found = await run_path(paths()["search_found"])
    assert found.result == FileSearchOutput(results=[HIT], vector_store_ids=["vs_1"])
    counted = await run_path(paths()["input_tokens_counted"])
    assert (counted.status, counted.result, _names(counted)) == ("completed", 42, ["count_input_tokens"])


async def test_webhook_delivery_paths() -> None:
    delivered = await run_path(paths()["webhook_delivered"])  # receiver down for an hour
    assert isinstance(delivered.result, DeliverWebhookOutput) and delivered.result.status == "delivered"
    assert 10 < delivered.result.attempts == len(delivered.calls)
    assert set(_names(delivered)) == {"deliver_webhook"}

    spent = await run_path(paths()["webhook_window_spent"])  # down for good
    assert spent.result == DeliverWebhookOutput(status="failed")
    assert _names(spent)[-1] == "fail_webhook_delivery" and len(spent.calls) > 10
    assert _inputs(spent, "fail_webhook_delivery")[0].webhook_id == "wh_1"


async def test_reconcile_paths() -> None:
    def pages(outcome: Outcome) -> list[int]:
        return [inp.after_seq for inp in _inputs(outcome, "reconcile_runs")]

    to_end = await run_path(paths()["reconcile_to_the_end"])
    assert to_end.result == ReconcileRunsOutput(checked=25, settled=5, next_seq=0)
    assert pages(to_end) == [0, 10, 20]

    bounded = await run_path(paths()["reconcile_bounded"])
    assert bounded.result == ReconcileRunsOutput(checked=20, settled=4, next_seq=20)
    assert pages(bounded) == [0, 10]

    resumed = await run_path(paths()["reconcile_resumed"])  # two ticks of a schedule
    assert resumed.result == ReconcileRunsOutput(checked=15, settled=3, next_seq=0)
    assert pages(resumed) == [0, 10, 20, 30]  # the second tick went on from the first's next_seq


def test_every_path_has_a_committed_history() -> None:
    assert set(paths()) <= set(recorders(["ingest", "search", "input_tokens", "webhook", "reconcile"]))
    for name in paths():
        assert list(HISTORIES.glob(f"{name}_v*.json")), f"no committed history for path {name!r}"


def _workflow_types_in_code() -> set[str]:
    found = set()
    for module in pkgutil.iter_modules(workflows.__path__):
        for _, cls in inspect.getmembers(
            importlib.import_module(f"workflows.{module.name}"), inspect.isclass
        ):
            if hasattr(cls, "__temporal_workflow_definition"):
                found.add(cls.__temporal_workflow_definition.name)
    return found


def _workflow_type(path: Path) -> str:
    start = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    return str(start["workflowType"]["name"])


def test_every_workflow_type_has_a_committed_history() -> None:
    in_code = _workflow_types_in_code()
    assert {RunWorkflow.__name__, *(w.__name__ for w in WORKFLOWS)} == in_code, "a workflow is not scripted"
    recorded = {_workflow_type(p) for p in HISTORIES.glob("*.json")}
    assert in_code <= recorded, f"no committed history for {sorted(in_code - recorded)}"


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _renamed_first_activity(path: Path) -> WorkflowHistory:
    """The history as a workflow that schedules another activity first would have recorded it."""
    history = json.loads(path.read_text())
    scheduled = next(e for e in history["events"] if "activityTaskScheduledEventAttributes" in e)
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] += "_v0"
    return WorkflowHistory.from_json(path.stem, json.dumps(history))


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path) -> None:
    await Replayer(workflows=WORKFLOWS).replay_workflow(_history(path))


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: p.stem)
async def test_history_fails_to_replay_on_a_changed_workflow(path: Path) -> None:
    """What a history guards: code that schedules another activity at a recorded step no longer
    replays it (here the history's first scheduled activity is renamed, the code kept)."""
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=WORKFLOWS).replay_workflow(_renamed_first_activity(path))


def test_resumed_tick_history_starts_from_the_previous_tick() -> None:
    """The schedule handed the recorded tick its predecessor's result, and the tick went on from it."""
    [path] = HISTORIES.glob("reconcile_resumed_v1.json")
    events = json.loads(path.read_text())["events"]
    start = events[0]["workflowExecutionStartedEventAttributes"]
    [previous] = start["lastCompletionResult"]["payloads"]
    assert json.loads(base64.b64decode(previous["data"]))["next_seq"] == 20
    first = next(e for e in events if "activityTaskScheduledEventAttributes" in e)
    [page] = first["activityTaskScheduledEventAttributes"]["input"]["payloads"]
    assert json.loads(base64.b64decode(page["data"]))["after_seq"] == 20
