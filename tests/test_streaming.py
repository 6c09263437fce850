"""Streaming runs over SSE: official events through the SDK's helpers, resumable, crash-safe.

The first tests are pure (api.sse's client view of retried attempts); the rest run against the
real stack through the official `openai` SDK, or raw HTTP where the SDK has no helper (resume).
Generations are short and greedy (temperature 0) to stay cheap on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

import api.sse
from api.sse import run_events
from api.sse_hub import RunEventHub
from api.sse_view import ClientView, PartText, restore_view
from assistants.db.pool import make_pool
from tests import stackutil
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
TERMINAL = {"completed", "incomplete", "failed", "cancelled", "expired"}


# --- pure: what a client holds across a retried attempt ----------------------------------------


def _delta(seq: int, attempt: int, text: str, discarded: bool = False, msg: str = "msg_1") -> dict[str, Any]:
    return {
        "seq": seq,
        "attempt": attempt,
        "event": "thread.message.delta",
        "discarded": discarded,
        "data": {
            "id": msg,
            "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]},
        },
    }


def _texts(view: ClientView, rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        for data in view.render(row):
            out.append(data["delta"]["content"][0]["text"]["value"])
    return out


def test_retry_that_reproduces_the_text_continues_where_the_client_was() -> None:
    view = ClientView()
    seen = _texts(view, [_delta(1, 1, "Hello"), _delta(2, 1, " wor")])  # then the worker dies
    seen += _texts(view, [_delta(3, 2, "Hel"), _delta(4, 2, "lo w"), _delta(5, 2, "orld"), _delta(6, 2, "!")])
    assert seen == ["Hello", " wor", "ld", "!"]
    assert "".join(seen) == "Hello world!"


def test_retry_that_diverges_sends_no_more_deltas() -> None:
    part = PartText()
    assert part.feed(1, "Hello") == "Hello"
    assert part.feed(2, "Bye") is None and part.diverged
    assert part.feed(2, " now") is None  # the completed message carries the stored text


def test_late_write_of_a_superseded_attempt_is_ignored() -> None:
    part = PartText()
    part.feed(2, "A")
    assert part.feed(1, "zzz") is None
    assert part.shown == "A"


def test_client_that_joined_after_the_discard_resumes_from_the_retry_only() -> None:
    rows = [
        _delta(1, 1, "Hello", discarded=True),
        _delta(2, 1, " wor", discarded=True),
        _delta(3, 2, "Hel"),
        _delta(4, 2, "lo w"),
        _delta(5, 2, "orld"),
    ]
    # It got seq 3 (a watcher of attempt 1 never would: "Hel" adds nothing to "Hello wor").
    view = restore_view(rows[:3], cursor=3)
    assert _texts(view, rows[3:]) == ["lo w", "orld"]
    # A client that watched attempt 1 live and stopped at seq 2 holds "Hello wor".
    view = restore_view(rows[:2], cursor=2)
    assert _texts(view, rows[2:]) == ["ld"]


@pytest.mark.parametrize("created_with_call", [False, True])
def test_tool_call_opens_with_empty_arguments_and_names_itself_once(created_with_call: bool) -> None:
    view = ClientView()
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "", "output": None}}
    created = {
        "seq": 1,
        "attempt": 1,
        "event": "thread.run.step.created",
        "discarded": False,
        "data": {
            "id": "step_1",
            "step_details": {"type": "tool_calls", "tool_calls": [call] if created_with_call else []},
        },
    }
    view.render(created)

    def step_delta(seq: int, args: str) -> dict[str, Any]:
        return {
            "seq": seq,
            "attempt": 1,
            "event": "thread.run.step.delta",
            "discarded": False,
            "data": {
                "id": "step_1",
                "object": "thread.run.step.delta",
                "delta": {
                    "step_details": {
                        "type": "tool_calls",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": args, "output": None},
                            }
                        ],
                    }
                },
            },
        }

    def calls(rendered: list[dict[str, Any]]) -> list[Any]:
        return [d["delta"]["step_details"]["tool_calls"][0] for d in rendered]

    opening, first = calls(view.render(step_delta(2, '{"a"')))
    (second,) = calls(view.render(step_delta(3, ": 1}")))
    # The SDK concatenates strings: id and name must come once, in the step or the opening delta.
    assert ("id" in opening) is (not created_with_call)
    assert opening["function"]["arguments"] == "" and opening["function"].get("name") == (
        None if created_with_call else "f"
    )
    assert first == {"index": 0, "type": "function", "function": {"arguments": '{"a"'}}
    assert second == {"index": 0, "type": "function", "function": {"arguments": ": 1}"}}


# --- against the stack --------------------------------------------------------------------------


class Recorder(AssistantEventHandler):
    def __init__(self, on_delta: Any = None) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []
        self.tool_call_deltas: list[str] = []
        self._on_delta = on_delta

    @override
    def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.deltas.append(delta.value or "")
        if self._on_delta:
            self._on_delta(self)

    @override
    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        if delta.type == "function" and delta.function and delta.function.arguments:
            self.tool_call_deltas.append(delta.function.arguments)


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model=MODEL, instructions="You are a helpful assistant.")


def _thread(client: openai.OpenAI, text: str = "Write a short poem about the sea.") -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": text}])


def _stored_text(client: openai.OpenAI, thread_id: str) -> str:
    msg = client.beta.threads.messages.list(thread_id=thread_id, order="desc", limit=1).data[0]
    assert msg.role == "assistant"
    return "".join(c.text.value for c in msg.content if c.type == "text")


def _wait_run(client: openai.OpenAI, thread_id: str, run_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in TERMINAL:
            return run
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} still {run.status}")


def _sse(response: httpx.Response) -> Any:
    """Yield (id, event, data) from a text/event-stream response."""
    ev: dict[str, Any] = {"id": None, "event": None, "data": []}
    for line in response.iter_lines():
        if line == "":
            if ev["event"] is not None or ev["data"]:
                yield ev["id"], ev["event"], "\n".join(ev["data"])
            ev = {"id": ev["id"], "event": None, "data": []}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                ev["data"].append(value)
            elif name in ("id", "event"):
                ev[name] = value


def _read_events(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    stop_after: Any = None,
    method: str = "GET",
    body: Any = None,
) -> list[tuple[str | None, str, str]]:
    out = []
    with http.stream(method, url, headers=headers, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for item in _sse(resp):
            out.append(item)
            if stop_after is not None and stop_after(out):
                break
    return out


def _delta_text(events: list[tuple[str | None, str, str]]) -> str:
    text = ""
    for _, name, data in events:
        if name == "thread.message.delta":
            for part in json.loads(data)["delta"]["content"]:
                text += part["text"]["value"]
    return text


def _auth(client: openai.OpenAI) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.api_key}", "OpenAI-Beta": "assistants=v2"}


def test_runs_stream_official_order_deltas_and_final_run(client: openai.OpenAI, assistant: Any) -> None:
    thread = _thread(client)
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        event_handler=handler,
        temperature=0,
        max_completion_tokens=24,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    ev = handler.events
    head = [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ]
    assert ev[:7] == head, ev
    deltas = [e for e in ev[7:] if e == "thread.message.delta"]
    assert ev[7 : 7 + len(deltas)] == deltas, (
        "deltas come together, between in_progress and the message's end"
    )
    # Greedy, the poem runs past 24 tokens: the budget ends the message and the run.
    tail = ev[7 + len(deltas) :]
    assert tail == ["thread.message.incomplete", "thread.run.step.completed", "thread.run.incomplete"], tail
    assert len(deltas) >= 3, "token-level deltas, not one blob"
    stored = _stored_text(client, thread.id)
    assert stored and "".join(handler.deltas) == stored
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.id == client.beta.threads.runs.list(thread.id).data[0].id
    assert messages[-1].content[0].text.value == stored


def test_create_and_run_stream_starts_with_thread_created(client: openai.OpenAI, assistant: Any) -> None:
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Say hi."}]},
        event_handler=handler,
        temperature=0,
        max_completion_tokens=8,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert handler.events[0] == "thread.created"
    assert handler.events[1:3] == ["thread.run.created", "thread.run.queued"]
    assert handler.events[-1] == "thread.run.incomplete" and run.status == "incomplete"  # 8 tokens
    # `thread.created` is in the run's log: the events endpoint replays it, and resuming after it
    # starts at the run's first event.
    with httpx.Client(timeout=60) as http:
        url = f"{client.base_url}threads/{run.thread_id}/runs/{run.id}/events"
        replay = _read_events(http, url, _auth(client))
        assert [e[1] for e in replay][:2] == ["thread.created", "thread.run.created"]
        assert json.loads(replay[0][2])["id"] == run.thread_id
        resumed = _read_events(http, url, {**_auth(client), "Last-Event-ID": str(replay[0][0])})
        assert resumed == replay[1:]
    assert [e[1] for e in replay][-1] == "done"


def test_resume_with_last_event_id_mid_run(client: openai.OpenAI, assistant: Any) -> None:
    thread = _thread(client)
    with httpx.Client(timeout=120) as http:
        first = _read_events(
            http,
            f"{client.base_url}threads/{thread.id}/runs",
            _auth(client),
            method="POST",
            body={
                "assistant_id": assistant.id,
                "stream": True,
                "temperature": 0,
                "max_completion_tokens": 32,
            },
            stop_after=lambda evs: sum(e[1] == "thread.message.delta" for e in evs) >= 3,
        )  # the client drops the connection mid-message; the run goes on
        run_id = json.loads(first[0][2])["id"]
        url = f"{client.base_url}threads/{thread.id}/runs/{run_id}/events"
        rest = _read_events(http, url, {**_auth(client), "Last-Event-ID": str(first[-1][0])})
        assert rest[-1][1] == "done"
        run = _wait_run(client, thread.id, run_id)
        whole = _read_events(http, url, _auth(client))  # a fresh replay of the whole run
    ids = [int(e[0]) for e in first + rest[:-1]]
    assert ids == sorted(set(ids)), "no duplicate, in order"
    assert first + rest == whole, "no gap: the resumed stream is the run's stream"
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert _delta_text(first + rest) == _stored_text(client, thread.id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def second_api(stack: Any) -> Any:
    """Another API process on the same database and Temporal: a replica."""
    port = _free_port()
    info = stack.stack_info()
    env = {**stack.env, "DATABASE_URL": info["database_url"], "TEMPORAL_ADDRESS": info["temporal_address"]}
    log = open(Path(stack.data_dir) / f"api-replica-{port}.log", "ab")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/assistants"), "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/v1/"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "the second API process exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the second API process not healthy within 120 s"
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    log.close()


def test_two_api_processes_serve_the_same_run(client: openai.OpenAI, assistant: Any, second_api: str) -> None:
    thread = _thread(client)
    run = client.beta.threads.runs.create(
        thread.id, assistant_id=assistant.id, temperature=0, max_completion_tokens=24
    )
    path = f"threads/{thread.id}/runs/{run.id}/events"
    results: dict[str, list[Any]] = {}

    def read(name: str, base: str) -> None:
        with httpx.Client(timeout=120) as http:
            results[name] = _read_events(http, base + path, _auth(client))

    readers = [
        threading.Thread(target=read, args=(n, b))
        for n, b in (("one", str(client.base_url)), ("two", second_api))
    ]
    for t in readers:
        t.start()
    for t in readers:
        t.join(300)
    assert results["one"] == results["two"]
    assert results["one"][-1][1] == "done"
    # A stream begun on one replica resumes on the other.
    with httpx.Client(timeout=60) as http:
        part = results["one"][:5]
        rest = _read_events(http, second_api + path, {**_auth(client), "Last-Event-ID": str(part[-1][0])})
    assert part + rest == results["one"]
    assert _delta_text(results["two"]) == _stored_text(client, thread.id)


def test_stream_across_worker_sigkill(client: openai.OpenAI, assistant: Any, stack: Any) -> None:
    """The inference worker dies mid-message; the retry regenerates it (greedy: the same text) and
    the stream continues where the client was, so the streamed text equals the stored message."""
    thread = _thread(client, "Write a long story about a lighthouse keeper.")
    killed: dict[str, int] = {}

    def kill_after_some_text(handler: Recorder) -> None:
        if not killed and len(handler.deltas) >= 2:
            pid = stack.pids()["worker-inference"]
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid

    handler = Recorder(on_delta=kill_after_some_text)
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        event_handler=handler,
        temperature=0,
        max_completion_tokens=48,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    assert killed, "the worker was killed mid-generation"
    # The retried attempt runs to the same budget an unkilled run reaches.
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details.reason == "max_completion_tokens"
    stored = _stored_text(client, thread.id)
    assert "".join(handler.deltas) == stored
    assert messages[-1].content[0].text.value == stored
    assert (
        handler.events.count("thread.message.created") == 1
        and handler.events.count("thread.run.step.created") == 1
    )
    # The retry really happened, and a fresh replay (which skips the discarded attempt) agrees.
    import psycopg

    with psycopg.connect(stack.stack_info()["database_url"]) as conn:
        attempts = conn.execute(
            "SELECT DISTINCT attempt FROM run_events WHERE run_id = %s AND event = 'thread.message.delta'",
            (run.id,),
        ).fetchall()
    assert len(attempts) >= 2, attempts
    with httpx.Client(timeout=60) as http:
        replay = _read_events(
            http, f"{client.base_url}threads/{thread.id}/runs/{run.id}/events", _auth(client)
        )
    assert _delta_text(replay) == stored


get_weather = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_forced_function_call_streams_to_requires_action_then_submit_continues(client: openai.OpenAI) -> None:
    helper = client.beta.assistants.create(model=MODEL, instructions="Use tools.", tools=[get_weather])  # type: ignore[list-item]
    handler, run = _forced_stream(client, helper.id)
    thread_id = run.thread_id
    assert handler.events[-1] == "thread.run.requires_action" and run.status == "requires_action"
    assert "thread.run.step.delta" in handler.events
    calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert calls[0].function.name == "get_weather"
    assert "".join(handler.tool_call_deltas) == calls[0].function.arguments
    after = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        event_handler=after,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "18C and sunny"}],
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert "thread.run.created" not in after.events, "only what follows the accepted outputs"
    assert after.events[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"], (
        after.events
    )
    # Greedy, the answer about the tool's output fits the budget.
    assert after.events[-1] == "thread.run.completed" and final.status == "completed", (
        final.incomplete_details
    )
    assert "".join(after.deltas) == _stored_text(client, thread_id)


def test_events_of_an_unknown_run_are_a_404_envelope(client: openai.OpenAI) -> None:
    thread = _thread(client, "hi")
    resp = httpx.get(
        f"{client.base_url}threads/{thread.id}/runs/run_nope/events", headers=_auth(client), timeout=30
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


# --- a stream errors only when the server really cannot go on ------------------------------------
# Seen once (issue 11): a forced-function stream ended with "The server had an error while
# streaming this run". Any failed read of the event log (the database restarting, a connection
# lost, a pool that could not hand out a connection in time on a busy machine) ended the stream.


def _forced_stream(
    client: openai.OpenAI, assistant_id: str, handler: Recorder | None = None
) -> tuple[Recorder, Any]:
    """A new thread asking for the weather, streamed with get_weather forced; the run as it ends."""
    thread = _thread(client, "What's the weather in Paris?")
    handler = handler or Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant_id,
        event_handler=handler,
        temperature=0,
        max_completion_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    return handler, run


def _assert_forced_call_streamed(handler: Recorder, run: Any) -> None:
    assert handler.events[-1] == "thread.run.requires_action" and run.status == "requires_action", (
        handler.events
    )
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert "".join(handler.tool_call_deltas) == call.function.arguments


@pytest.fixture(scope="module")
def weather_assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model=MODEL, instructions="Use tools.", tools=[get_weather])  # type: ignore[list-item]


def test_forced_function_stream_repeated_under_cpu_load(
    client: openai.OpenAI, weather_assistant: Any
) -> None:
    """Two busy processes take the machine's cores while the same forced call streams three times."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for _ in range(3):
            _assert_forced_call_streamed(*_forced_stream(client, weather_assistant.id))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.fixture(scope="module")
def waiting_run(client: openai.OpenAI, weather_assistant: Any) -> Any:
    """A forced function call's run, waiting in requires_action: its log ends with the stop event."""
    thread = _thread(client, "What's the weather in Paris?")
    run = client.beta.threads.runs.create(
        thread.id,
        assistant_id=weather_assistant.id,
        temperature=0,
        max_completion_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    deadline = time.monotonic() + 240
    while run.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.5)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "requires_action", run.status
    return run


def _sse_names(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    """(id, event) of each event in a stream's raw chunks; an event without an id keeps the last one."""
    out: list[tuple[str | None, str]] = []
    last_id = None
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        last_id = fields.get("id", last_id)
        if "event" in fields:
            out.append((last_id, fields["event"]))
    return out


def _stream_with_pool_held(database_url: str, run_id: str, timeouts: int | None) -> tuple[list[bytes], float]:
    """Stream a run through a one-connection pool whose connection the test holds for as long as
    `timeouts` reads may wait for one (None: until the stream ends), so the stream's reads fail
    with PoolTimeout meanwhile: a database the API cannot reach, as during a restart or on an
    overloaded machine. Returns the stream's chunks and how long the connection was held."""

    async def main() -> tuple[list[bytes], float]:
        pool = make_pool(database_url, min_size=1, max_size=1)
        await pool.open(wait=True)
        hold = pool.timeout * timeouts + 1 if timeouts is not None else 0.0
        hub = RunEventHub(database_url)
        chunks: list[bytes] = []

        async def consume() -> None:
            async for chunk in run_events(pool, hub, run_id):
                chunks.append(chunk)

        try:
            async with pool.connection():
                task = asyncio.create_task(consume())
                if timeouts is None:
                    await asyncio.wait_for(asyncio.shield(task), 120)
                else:
                    await asyncio.sleep(hold)
            await asyncio.wait_for(task, 120)
        finally:
            await hub.close()
            await pool.close()
        return chunks, hold

    return asyncio.run(main())


def test_stream_waits_out_a_database_it_cannot_reach(
    client: openai.OpenAI, stack: StackHandle, waiting_run: Any
) -> None:
    chunks, _ = _stream_with_pool_held(stack.database_url, waiting_run.id, timeouts=2)
    streamed = _sse_names(chunks)
    assert all(name != "error" for _, name in streamed), chunks[-1]
    with httpx.Client(timeout=60) as http:
        replay = _read_events(
            http,
            f"{client.base_url}threads/{waiting_run.thread_id}/runs/{waiting_run.id}/events",
            _auth(client),
        )
    assert streamed == [(i, name) for i, name, _ in replay], "the whole run, as the API serves it"
    assert [name for _, name in streamed][-2:] == ["thread.run.requires_action", "done"]


def test_stream_gives_up_when_the_database_stays_away(
    stack: StackHandle, waiting_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.sse, "DB_GIVE_UP_S", 0.0)
    chunks, _ = _stream_with_pool_held(stack.database_url, waiting_run.id, timeouts=None)
    assert [name for _, name in _sse_names(chunks)] == ["error"]
    error = json.loads(b"".join(chunks).decode().split("data: ", 1)[1])["error"]
    assert error["code"] == "database_unavailable" and error["type"] == "server_error"


@pytest.fixture
def own_stack() -> Iterator[StackHandle]:
    """A stack of its own: this test kills its Postgres."""
    with stackutil.own_stack("assistants-sse-pg-") as handle:
        yield handle


def test_forced_function_stream_survives_postgres_killed_mid_stream(own_stack: StackHandle) -> None:
    """Postgres is SIGKILLed while the stream waits for the call (the stack restarts it): the
    stream goes on to `requires_action` and `done` instead of an error event."""
    client = openai.OpenAI(
        base_url=own_stack.base_url, api_key=own_stack.create_key("default"), max_retries=0, timeout=300
    )
    helper = client.beta.assistants.create(model=MODEL, instructions="Use tools.", tools=[get_weather])  # type: ignore[list-item]
    killed: list[int] = []

    class KillPostgres(Recorder):
        @override
        def on_event(self, event: Any) -> None:
            super().on_event(event)
            if event.event == "thread.run.in_progress" and not killed:
                killed.append(own_stack.pids()["postgres"])
                os.kill(killed[0], signal.SIGKILL)

    handler, run = _forced_stream(client, helper.id, KillPostgres())
    assert killed and own_stack.pids()["postgres"] != killed[0], "postgres was killed and restarted"
    _assert_forced_call_streamed(handler, run)
