"""Issue 17, point 1: each process of the stack serves Prometheus `/metrics` off the public port,
and one run moves the counters and histograms of the API and of both workers by exactly what
it did; the gauges read at scrape time (engine batch and KV cache, sandbox sessions, ingestion
backlog, active runs) follow what the stack holds while it holds it."""

from __future__ import annotations

import time
import urllib.request

import httpx
import openai
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REMOTE_MODEL
from tests.stackutil import StackHandle
from tests.tool_requests import forced_code_run
from tests.vllm_server import VllmServer

pytestmark = pytest.mark.timeout(300)

RUNS_ROUTE = "/v1/threads/{thread_id}/runs"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _failures(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "assistants_activity_failures_total")


def _scrape_all(stack: StackHandle) -> dict[str, Samples]:
    return {role: _scrape(urls["metrics"]) for role, urls in stack.stack_info()["metrics"].items()}


def test_metrics_move_by_one_run(
    stack: StackHandle, client: openai.OpenAI, assistant, model_name: str
) -> None:  # type: ignore[no-untyped-def]
    urls = stack.stack_info()["metrics"]
    assert set(urls) == {"api", "worker-runs", "worker-inference"}
    ports = {int(u["metrics"].rsplit(":", 1)[1].split("/")[0]) for u in urls.values()}
    assert len(ports) == 3 and stack.port not in ports  # one per process, none the public port
    # The public port does not serve them.
    assert httpx.get(stack.api_url + "/metrics").status_code == 404

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
    before = _scrape_all(stack)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.usage is not None
    after = _scrape_all(stack)

    def moved(role: str, name: str, **labels: str) -> float:
        return _get(after[role], name, **labels) - _get(before[role], name, **labels)

    # API: one run created, one POST to the runs route answered 200, its latency observed once.
    assert moved("api", "assistants_runs_started_total", model=model_name) == 1
    assert moved("api", "assistants_http_requests_total", route=RUNS_ROUTE, method="POST", status="200") == 1
    assert (
        moved("api", "assistants_http_request_duration_seconds_count", route=RUNS_ROUTE, method="POST") == 1
    )
    # Routes are templates, never raw paths (ids would explode the label set).
    assert not any(thread.id in str(labels) for _, labels in after["api"])
    # Active runs by status, read from Postgres when scraped: this run is no longer active.
    for status in ("queued", "in_progress", "requires_action", "cancelling"):
        assert ("assistants_runs_active", frozenset({("status", status)})) in after["api"]
        assert ("assistants_runs_oldest_active_seconds", frozenset({("status", status)})) in after["api"]

    # Runs worker: the run finished once, with its status and model, and its duration observed.
    status = run.status
    assert moved("worker-runs", "assistants_runs_finished_total", status=status, model=model_name) == 1
    assert moved("worker-runs", "assistants_run_duration_seconds_count", status=status, model=model_name) == 1
    for activity in ("start_run", "finish_run"):
        assert moved("worker-runs", "assistants_activity_attempts_total", activity=activity) == 1
    for role in ("worker-runs", "worker-inference"):
        assert _failures(after[role]) == _failures(before[role])

    # Inference worker: one turn generated, its first token timed once, its tokens counted.
    tokens = run.usage.completion_tokens
    assert moved("worker-inference", "assistants_activity_attempts_total", activity="generate") == 1
    assert moved("worker-inference", "assistants_time_to_first_token_seconds_count", model=model_name) == 1
    assert moved("worker-inference", "assistants_output_tokens_total", model=model_name) == tokens
    if tokens > 1:
        assert moved("worker-inference", "assistants_output_tokens_per_second_count", model=model_name) == 1
    # Engine gauges, read at scrape time: the batch is empty again.
    assert _get(after["worker-inference"], "assistants_engine_batch_size", model=model_name) == 0
    assert _get(after["worker-inference"], "assistants_engine_waiting_requests", model=model_name) == 0
    assert _get(after["worker-inference"], "assistants_engine_max_batch_size", model=model_name) > 0
    assert ("assistants_engine_kv_cache_bytes", frozenset({("model", model_name)})) in after[
        "worker-inference"
    ]
    assert _get(after["worker-inference"], "assistants_engine_kv_cache_bytes", model=model_name) == 0


def test_unmatched_route_and_temporal_sdk_metrics(stack: StackHandle) -> None:
    urls = stack.stack_info()["metrics"]
    before = _scrape(urls["api"]["metrics"])
    assert httpx.get(stack.base_url + "/no-such-route-xyz").status_code == 404
    after = _scrape(urls["api"]["metrics"])
    labels = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert (
        _get(after, "assistants_http_requests_total", **labels)
        - _get(before, "assistants_http_requests_total", **labels)
        == 1
    )
    # Temporal's SDK metrics, each process on a port of its own (its runtime's exporter).
    for role in ("worker-runs", "worker-inference"):
        names = {name for name, _ in _scrape(urls[role]["temporal_metrics"])}
        assert any(n.startswith("temporal_") for n in names), sorted(names)[:20]


def test_sse_streams_open_gauge(stack: StackHandle, client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    api = stack.stack_info()["metrics"]["api"]["metrics"]
    gauge = "assistants_sse_streams_open"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
    idle = _get(_scrape(api), gauge)
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=4
    ) as stream:
        next(iter(stream))  # the stream is open: its response has started
        assert _get(_scrape(api), gauge) == idle + 1
        stream.until_done()
    # The server closes its side after the last event; the gauge drops back.
    deadline = 50
    while _get(_scrape(api), gauge) != idle and deadline:
        deadline -= 1
        time.sleep(0.1)
    assert _get(_scrape(api), gauge) == idle


def _wait_for(read, want: float, tries: int = 100) -> float:  # type: ignore[no-untyped-def]
    value = read()
    while value != want and tries:
        tries -= 1
        time.sleep(0.1)
        value = read()
    return value


def test_engine_and_active_run_gauges_while_generating(
    stack: StackHandle, client: openai.OpenAI, assistant, model_name: str
) -> None:  # type: ignore[no-untyped-def]
    urls = stack.stack_info()["metrics"]
    inference, api = urls["worker-inference"]["metrics"], urls["api"]["metrics"]
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    )
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=400
    ) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                break  # the engine is generating this run's answer now
        engine, state = _scrape(inference), _scrape(api)
        run_id = stream.current_run.id  # type: ignore[union-attr]
        client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
        stream.until_done()
    # Its row is in the running batch, and its keys and values (a prompt of tens of tokens, 30
    # layers, fp32) hold far more than a kilobyte.
    assert _get(engine, "assistants_engine_batch_size", model=model_name) == 1
    assert _get(engine, "assistants_engine_kv_cache_bytes", model=model_name) > 100_000
    assert _get(state, "assistants_runs_active", status="in_progress") >= 1
    assert _get(state, "assistants_runs_oldest_active_seconds", status="in_progress") >= 0
    # Cancelled: the row leaves the batch and the cache is freed.
    kv = _wait_for(lambda: _get(_scrape(inference), "assistants_engine_kv_cache_bytes", model=model_name), 0)
    assert kv == 0


def test_sandbox_sessions_gauge(stack: StackHandle, client: openai.OpenAI, model_name: str) -> None:
    runs = stack.stack_info()["metrics"]["worker-runs"]["metrics"]
    before = _scrape(runs)
    assert _get(before, "assistants_sandbox_sessions_max") == stack.settings().sandbox_max_sessions
    run = forced_code_run(client, model_name)
    assert run.status == "completed", run.last_error or run.incomplete_details
    after = _scrape(runs)
    # This thread's sandbox stays open for its next run (until idle or evicted).
    opened = _get(after, "assistants_sandbox_sessions_open") - _get(
        before, "assistants_sandbox_sessions_open"
    )
    assert opened == 1
    tools = "assistants_activity_attempts_total"
    assert (
        _get(after, tools, activity="run_builtin_tools") - _get(before, tools, activity="run_builtin_tools")
        == 1
    )


def test_ingestion_backlog_gauge(stack: StackHandle, client: openai.OpenAI) -> None:
    """A file stays awaiting ingestion while the test holds the parsed-texts table locked against
    writes (the parse activity cannot store its text); the gauge counts it, then lets it go."""
    api = stack.stack_info()["metrics"]["api"]["metrics"]
    backlog = "assistants_ingestion_backlog"
    idle = _get(_scrape(api), backlog)
    file = client.files.create(
        file=("backlog.txt", b"The lighthouse keeper counts ships."), purpose="assistants"
    )
    with psycopg.connect(stack.database_url, autocommit=False) as conn:
        conn.execute("LOCK TABLE file_texts IN EXCLUSIVE MODE")  # reads pass, writes wait
        store = client.vector_stores.create(name="backlog", file_ids=[file.id])
        held = _scrape(api)
        assert _get(held, backlog) == idle + 1
        assert _get(held, "assistants_ingestion_oldest_seconds") >= 0
        conn.rollback()  # the parse activity's write goes through
    for _ in range(300):
        vf = client.vector_stores.files.retrieve(file.id, vector_store_id=store.id)
        if vf.status != "in_progress":
            break
        time.sleep(0.2)
    assert vf.status == "completed", vf.last_error
    assert _wait_for(lambda: _get(_scrape(api), backlog), idle) == idle


@pytest.mark.timeout(900)  # vLLM's start (the `vllm` fixture) takes minutes on 2 busy cores
def test_remote_turn_metrics(stack: StackHandle, client: openai.OpenAI, vllm: VllmServer) -> None:
    """A turn on a remote (vLLM) model is timed like a local one: its first token and its rate."""
    inference = stack.stack_info()["metrics"]["worker-inference"]["metrics"]
    a = client.beta.assistants.create(model=REMOTE_MODEL, instructions="Be brief.", temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Name a colour."}])
    before = _scrape(inference)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=a.id, max_completion_tokens=24, poll_interval_ms=200
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.usage is not None
    after = _scrape(inference)

    def moved(name: str) -> float:
        return _get(after, name, model=REMOTE_MODEL) - _get(before, name, model=REMOTE_MODEL)

    assert moved("assistants_time_to_first_token_seconds_count") == 1
    assert moved("assistants_time_to_first_token_seconds_sum") > 0
    assert moved("assistants_output_tokens_total") == run.usage.completion_tokens
    if run.usage.completion_tokens > 1:
        assert moved("assistants_output_tokens_per_second_count") == 1
