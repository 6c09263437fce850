"""Issue 17, point 3: with ASSISTANTS_LOG_FORMAT=json every process of the stack writes JSON
lines, and the lines an activity writes within a run carry that run's ids and its workflow id."""

from __future__ import annotations

import json

import openai
import psycopg
import pytest

from tests.stackutil import own_stack

pytestmark = pytest.mark.timeout(420)

MODEL = "smollm2-135m-instruct"


def test_json_log_lines_carry_the_run_ids() -> None:
    with own_stack("assistants-logs-", env={"ASSISTANTS_LOG_FORMAT": "json"}) as stack:
        client = openai.OpenAI(
            base_url=stack.base_url, api_key=stack.create_key("logs"), max_retries=0, timeout=120
        )
        assistant = client.beta.assistants.create(model=MODEL, instructions="Be brief.", temperature=0)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8
        )
        assert run.status in ("completed", "incomplete"), run.last_error
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute("SELECT project_id FROM runs WHERE id = %s", (run.id,)).fetchone()
        assert row is not None
        project_id = row[0]
        stack.stop()  # shutdown lines too
        text = stack.log_path.read_text()

    lines, not_json = [], []
    for raw in filter(None, text.splitlines()):
        try:
            lines.append(json.loads(raw))
        except ValueError:
            not_json.append(raw)
    assert not not_json, "\n".join(not_json[:20])
    assert all(isinstance(line, dict) and {"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    # The supervisor and both workers wrote some (the API logs little at INFO).
    assert {"assistants.up", "assistants.worker"} <= {line["logger"] for line in lines}
    by_activity = {
        name: [line for line in lines if line.get("activity") == name and line.get("run_id") == run.id]
        for name in ("start_run", "generate")
    }
    for name, found in by_activity.items():
        assert found, f"no line from {name} for {run.id}"
        for line in found:
            assert line["workflow_id"] == run.id  # a run's workflow id is its id
            assert line["thread_id"] == thread.id
            assert line["project_id"] == project_id
            assert line["attempt"] >= 1


def test_api_lines_of_a_run_route_carry_the_path_ids() -> None:
    """The API's middleware alone (its log lines come from error paths, hard to provoke on a stack)."""
    import logging

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from api.log_context import LogContextMiddleware
    from assistants.logjson import JsonFormatter, bind

    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(JsonFormatter().format(record))

    async def endpoint(request):  # type: ignore[no-untyped-def]
        bind(project_id="proj_1")  # as api/deps.py authenticate does
        logging.getLogger("api.test").warning("inside")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/v1/threads/{path:path}", endpoint, methods=["GET", "POST"])])
    app.add_middleware(LogContextMiddleware)
    logger = logging.getLogger("api.test")
    logger.addHandler(handler := Capture())
    try:
        with TestClient(app) as http:
            http.get("/v1/threads/thread_a/runs/run_b/steps")
            http.post("/v1/threads/runs")
    finally:
        logger.removeHandler(handler)
    run_line, create_line = (json.loads(r) for r in records)
    assert {k: run_line[k] for k in ("run_id", "thread_id", "workflow_id", "project_id")} == {
        "run_id": "run_b", "thread_id": "thread_a", "workflow_id": "run_b", "project_id": "proj_1",
    }  # fmt: skip
    assert "thread_id" not in create_line and create_line["project_id"] == "proj_1"
