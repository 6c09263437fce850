"""The SDK's poll helpers (`create_and_poll`, `runs.poll`) against the real stack: a read marked
`X-Stainless-Poll-Helper` waits for the run's status to change (long polling, api/run_wait.py)
and tells the helper not to sleep, so a run's end reaches the client when it happens instead of
up to a second later; a plain read still answers at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from api.run_wait import LONG_POLL_S, SETTLED
from tests.stackutil import StackHandle, own_stack

pytestmark = pytest.mark.timeout(600)

MODEL = "smollm2-135m-instruct"
STORY = "Write a long, detailed story about a lighthouse keeper. Use at least six paragraphs."


@pytest.fixture(scope="module")
def polling_stack() -> Iterator[StackHandle]:
    with own_stack("assistants-polling-") as handle:
        yield handle


@pytest.fixture(scope="module")
def key(polling_stack: StackHandle) -> str:
    return polling_stack.create_key()


def _client(stack: StackHandle, key: str, http: httpx.Client | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=0, timeout=120, http_client=http)


def _start(client: openai.OpenAI, tokens: int) -> Any:
    assistant = client.beta.assistants.create(model=MODEL, instructions="You are a helpful assistant.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": STORY}])
    return client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=tokens, temperature=0
    )


def test_poll_helper_read_answers_when_the_status_changes(polling_stack: StackHandle, key: str) -> None:
    client = _client(polling_stack, key)
    run = _start(client, 48)
    url = f"{polling_stack.base_url}/threads/{run.thread_id}/runs/{run.id}"
    auth = {"Authorization": f"Bearer {key}"}

    t = time.monotonic()
    plain = httpx.get(url, headers=auth, timeout=60)
    assert plain.status_code == 200 and time.monotonic() - t < LONG_POLL_S / 2
    assert "openai-poll-after-ms" not in plain.headers

    status, reads = plain.json()["status"], 0
    while status not in SETTLED:
        t = time.monotonic()
        r = httpx.get(url, headers={**auth, "X-Stainless-Poll-Helper": "true"}, timeout=60)
        took = time.monotonic() - t
        assert r.status_code == 200, r.text
        assert r.headers["openai-poll-after-ms"] == "0"
        # Each read either brings a new status or has waited the whole long-poll window.
        assert r.json()["status"] != status or took >= LONG_POLL_S - 0.5, (status, took)
        status, reads = r.json()["status"], reads + 1
        assert reads < 30
    assert status in ("completed", "incomplete")


def test_create_and_poll_reads_once_per_status_change(polling_stack: StackHandle, key: str) -> None:
    gets: list[float] = []

    def count(request: httpx.Request) -> None:
        if request.method == "GET" and "/runs/" in request.url.path:
            gets.append(time.monotonic())

    with httpx.Client(event_hooks={"request": [count]}) as http:
        client = _client(polling_stack, key, http)
        assistant = client.beta.assistants.create(model=MODEL, instructions="You are a helpful assistant.")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": STORY}])
        t = time.monotonic()
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=48, temperature=0
        )
        took = time.monotonic() - t
    assert run.status in ("completed", "incomplete")
    assert run.usage is not None and run.usage.completion_tokens > 0
    # queued -> in_progress -> completed: at most one read per change, plus one per expired window
    # (the SDK without long polling reads once a second: ~5+ reads for a run of several seconds).
    assert len(gets) <= 2 + int(took // LONG_POLL_S), (len(gets), took)
