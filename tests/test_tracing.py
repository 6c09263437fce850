"""Issue 17, point 2: with ASSISTANTS_OTEL_ENABLED each process of the stack exports its spans over
OTLP/HTTP (here to a receiver in the test process), and one run makes one trace: the API request
-> the workflow -> its activities in both workers -> their Postgres queries. Off (the default),
nothing is exported even with an endpoint set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Interceptor, Replayer

from assistants.settings import Settings
from assistants.tracing import temporal_interceptors
from tests.otlp_receiver import OtlpReceiver, Span
from tests.stackutil import StackHandle, own_stack
from workflows.run import RunWorkflow

pytestmark = pytest.mark.timeout(600)

MODEL = "smollm2-135m-instruct"
SERVER_KIND = 2  # opentelemetry.proto Span.SpanKind.SPAN_KIND_SERVER
# Finished spans leave each process within this delay (the SDK's default is 5 s).
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
HISTORIES = Path(__file__).parent / "histories"


def _run_once(stack: StackHandle) -> openai.types.beta.threads.Run:
    client = openai.OpenAI(
        base_url=stack.base_url, api_key=stack.create_key("tracing"), max_retries=0, timeout=120
    )
    assistant = client.beta.assistants.create(model=MODEL, instructions="Be brief.", temperature=0)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Say hi."}]},
        max_completion_tokens=4,
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    return run


def _is_db(span: Span) -> bool:
    return (
        span.attributes.get("db.system") == "postgresql"
        or span.attributes.get("db.system.name") == "postgresql"
    )


def _ancestors(span: Span, by_id: dict[str, Span]) -> Iterator[Span]:
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        yield span


def _request_span(spans: list[Span]) -> Span | None:
    return next(
        (
            s
            for s in spans
            if s.kind == SERVER_KIND
            and s.service == "assistants-api"
            and s.attributes.get("http.route") == "/v1/threads/runs"
            and s.attributes.get("http.request.method", s.attributes.get("http.method")) == "POST"
        ),
        None,
    )


def _run_finished(spans: list[Span]) -> bool:
    request = _request_span(spans)
    return request is not None and any(
        s.name == "RunActivity:finish_run" and s.trace_id == request.trace_id for s in spans
    )


def test_one_trace_from_request_through_workflow_to_postgres() -> None:
    with OtlpReceiver() as receiver:
        env = {"ASSISTANTS_OTEL_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **FAST_EXPORT}
        with own_stack("assistants-tracing-", env=env) as stack:
            _run_once(stack)
            spans = receiver.wait_for(_run_finished)

    request = _request_span(spans)
    assert request is not None
    trace = [s for s in spans if s.trace_id == request.trace_id]
    by_id = {s.span_id: s for s in trace}
    names = {s.name for s in trace}
    # The API started the workflow within the request; the runs worker ran it and its store
    # activities; the inference worker ran the turn's generation. One trace id for all.
    assert {"StartWorkflow:RunWorkflow", "RunWorkflow:RunWorkflow"} <= names, sorted(names)
    services = {s.name: s.service for s in trace}
    assert services["StartWorkflow:RunWorkflow"] == "assistants-api"
    assert services["RunWorkflow:RunWorkflow"] == "assistants-worker-runs"
    for activity, service in (("start_run", "runs"), ("generate", "inference"), ("finish_run", "runs")):
        assert services.get(f"RunActivity:{activity}") == f"assistants-worker-{service}", sorted(names)
    activities = [s for s in trace if s.name.startswith("RunActivity:")]
    # The interceptor parents the workflow's own spans on the context its start carried: the
    # workflow run and each activity call hang under StartWorkflow, which hangs under the request.
    start = next(s for s in trace if s.name == "StartWorkflow:RunWorkflow")
    assert request in _ancestors(start, by_id)
    assert next(s for s in trace if s.name == "RunWorkflow:RunWorkflow").parent_id == start.span_id
    # Every activity span's parents lead, span by span, through its call and the workflow start
    # to the request.
    for span in activities:
        chain = list(_ancestors(span, by_id))
        names_up = [s.name for s in chain]
        assert names_up[:2] == ["StartActivity:" + span.name.split(":", 1)[1], start.name], names_up
        assert chain[1] == start and request in chain[2:], names_up
    # Postgres queries: under the request in the API, and under activities in the workers.
    db = [s for s in trace if _is_db(s)]
    assert any(s.service == "assistants-api" for s in db), sorted(names)
    under_activity = [s for s in db if any(a.name.startswith("RunActivity:") for a in _ancestors(s, by_id))]
    assert {s.service for s in under_activity} >= {"assistants-worker-runs"}, sorted(names)
    start_run = [s for s in under_activity if by_id[s.parent_id].name == "RunActivity:start_run"]
    assert start_run, "no query directly under RunActivity:start_run"


def test_nothing_is_exported_when_tracing_is_off() -> None:
    with OtlpReceiver() as receiver:
        # An endpoint alone does not turn tracing on.
        with own_stack(
            "assistants-notracing-", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **FAST_EXPORT}
        ) as stack:
            _run_once(stack)
            stack.stop()  # a batch processor would flush at exit: nothing may arrive even then
        assert receiver.requests == 0
        assert receiver.spans == []


async def test_committed_histories_replay_with_tracing_on() -> None:
    """The interceptor's workflow half runs inside the sandbox and writes no span on replay:
    every committed history still replays with it (workflow code is unchanged)."""
    # What a worker inherits from its client: the client's interceptors that are worker ones.
    inherited = [i for i in temporal_interceptors(Settings(otel_enabled=True)) if isinstance(i, Interceptor)]
    assert inherited, "tracing on gives workers Temporal's tracing interceptor"
    replayer = Replayer(workflows=[RunWorkflow], interceptors=inherited)
    histories = sorted(HISTORIES.glob("run_*.json"))
    assert histories
    for path in histories:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))
    assert temporal_interceptors(Settings(otel_enabled=False)) == []
