"""Issue 15: a background response survives a worker SIGKILL and completes exactly once.

On a stack of its own (the kills must not disturb the session stack): a background response is
created in a conversation through the official SDK, its stream is read until text arrives, a
worker is SIGKILLed mid-generation, the supervisor restarts it, and the stream is resumed with
`starting_after`. The response ends with one output message whose text is what the stream
showed and what retrieve shows, and the conversation (a thread) holds one assistant message."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest

from stack.processes import pid_alive
from tests.stackutil import StackHandle, own_stack

pytestmark = pytest.mark.timeout(600)

MODEL = "smollm2-135m-instruct"
PROMPT = "Write a long story about a lighthouse keeper."
TOKENS = 48  # greedy SmolLM2 keeps writing: the response ends `incomplete` at this budget


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    with own_stack("assistants-resp-durable-") as handle:
        yield handle


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.create_key(), max_retries=2, timeout=120)


def _restarted(stack: StackHandle, role: str, old: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = stack.pids().get(role)
        if pid not in (None, old) and pid_alive(pid):
            return
        time.sleep(0.2)
    raise AssertionError(f"{role} was not restarted in {timeout}s\n{stack.log_tail()}")


def _delta_attempts(stack: StackHandle, run_id: str) -> int:
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT attempt FROM run_events WHERE run_id = %s AND event = 'thread.message.delta'",
            (run_id,),
        ).fetchall()
    return len(rows)


def _run_id_of(stack: StackHandle, response_id: str) -> str:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT run_id FROM responses WHERE id = %s", (response_id,)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("role", ["worker-inference", "worker-runs"])
def test_background_response_survives_worker_sigkill(
    stack: StackHandle, client: openai.OpenAI, role: str
) -> None:
    conv = client.conversations.create()
    made = client.responses.create(
        model=MODEL,
        conversation=conv.id,
        input=PROMPT,
        background=True,
        temperature=0,
        max_output_tokens=TOKENS,
    )
    assert made.background is True and made.status in ("queued", "in_progress")

    # Read the live stream until the model has written something, then kill the worker.
    events: list[Any] = []
    old = stack.pids()[role]
    with client.responses.stream(response_id=made.id) as stream:
        for event in stream:
            events.append(event)
            if sum(e.type == "response.output_text.delta" for e in events) >= 2:
                os.kill(old, signal.SIGKILL)
                break
    assert sum(e.type == "response.output_text.delta" for e in events) >= 2, [e.type for e in events]
    _restarted(stack, role, old)

    # Resume where the client was: the rest of the same numbered stream.
    with client.responses.stream(response_id=made.id, starting_after=events[-1].sequence_number) as stream:
        events.extend(stream)
    names = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events))), names
    assert names[-1] == "response.incomplete", names
    final = events[-1].response
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert names.count("response.output_item.added") == 1 and names.count("response.output_item.done") == 1

    [item] = final.output
    assert item.type == "message"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed and streamed == final.output_text
    stored = client.responses.retrieve(made.id)
    assert stored.status == "incomplete" and [o.id for o in stored.output] == [item.id]
    assert stored.output_text == streamed

    # Exactly once in the store: one assistant message in the conversation, which is a thread.
    items = client.conversations.items.list(conv.id).data
    assistant = [i for i in items if i.type == "message" and i.role == "assistant"]
    assert [i.id for i in assistant] == [item.id], items
    messages = client.beta.threads.messages.list(thread_id=conv.id).data
    assert [m.id for m in messages if m.role == "assistant"] == [item.id]
    assert messages[0].content[0].text.value == streamed  # type: ignore[union-attr]

    if role == "worker-inference":
        # The generation really was cut and retried (the stream folded the discarded attempt).
        assert _delta_attempts(stack, _run_id_of(stack, made.id)) >= 2
