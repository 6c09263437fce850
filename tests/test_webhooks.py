"""Webhooks: signatures (alone), the delivery workflow under time-skipping (a receiver down for an
hour, one down for good), and end to end: runs on the real stack announced to a receiver that
fails its first requests, through the official SDK's webhook endpoints API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import psycopg
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from assistants.payloads import DeliverWebhookInput, DeliverWebhookOutput, WebhookDeliveryFailed
from assistants.webhooks import (
    InvalidSignature,
    delivery_workflow_id,
    event_id_for,
    new_secret,
    signed_headers,
    url_problem,
    verify,
)
from workflows.webhooks import WebhookDeliveryWorkflow

QUEUE = "test-webhooks"


# --- signatures --------------------------------------------------------------------------------


def test_signature_verifies_and_rejects_tampering() -> None:
    secret, body = new_secret(), b'{"id":"evt_1","object":"event"}'
    headers = signed_headers(secret, "evt_1", body, timestamp=1_700_000_000)
    assert headers["webhook-signature"].startswith("v1,")
    verify(secret, headers, body, now=1_700_000_010)
    with pytest.raises(InvalidSignature):
        verify(secret, headers, body + b" ", now=1_700_000_010)  # body changed
    with pytest.raises(InvalidSignature):
        verify(new_secret(), headers, body, now=1_700_000_010)  # another secret
    with pytest.raises(InvalidSignature):
        verify(secret, {**headers, "webhook-id": "evt_2"}, body, now=1_700_000_010)  # id is signed
    with pytest.raises(InvalidSignature):
        verify(secret, headers, body, now=1_700_000_000 + 301)  # stale: replay window passed
    with pytest.raises(InvalidSignature):
        verify(secret, {k: v for k, v in headers.items() if k != "webhook-timestamp"}, body)


def test_signature_is_standard_webhooks_as_the_openai_sdk_checks_it() -> None:
    secret, body = new_secret(), json.dumps({"id": "evt_x", "type": "thread.run.completed"}).encode()
    headers = signed_headers(secret, "evt_x", body)
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    client.webhooks.verify_signature(body, headers, secret=secret)  # raises on mismatch
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.verify_signature(body, headers, secret=new_secret())


def test_known_vector() -> None:
    # Fixed inputs -> fixed header, so the format cannot drift silently (base64 key "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").
    headers = signed_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        timestamp=1614265330,
    )
    # The Standard Webhooks reference test vector.
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_event_id_is_derived_from_the_transition() -> None:
    run = {"id": "run_1", "status": "completed"}
    assert event_id_for(run) == event_id_for(dict(run))
    assert event_id_for(run) != event_id_for({**run, "status": "failed"})
    waiting = {
        "id": "run_1",
        "status": "requires_action",
        "required_action": {"submit_tool_outputs": {"tool_calls": [{"id": "call_a"}]}},
    }
    second_turn = {**waiting, "required_action": {"submit_tool_outputs": {"tool_calls": [{"id": "call_b"}]}}}
    assert event_id_for(waiting).startswith("evt_")
    assert event_id_for(waiting) != event_id_for(second_turn)  # each tool-calling turn is its own event


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "javascript:alert(1)",
        "http://",
        "https://h:99999/",
        "http://exa mple.com/",
        "",
        "https://x/" + "a" * 3000,
    ],
)
def test_bad_urls(url: str) -> None:
    assert url_problem(url)


@pytest.mark.parametrize(
    "url", ["https://example.com/hook", "http://127.0.0.1:8080/h?x=1", "https://[::1]:9/"]
)
def test_good_urls(url: str) -> None:
    assert url_problem(url) is None


# --- delivery workflow, time-skipped -------------------------------------------------------------


@pytest.fixture(scope="module")
async def env():  # type: ignore[no-untyped-def]
    path = shutil.which("temporal-test-server") or str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path) as env:
        yield env


@dataclass
class FakeReceiver:
    """`deliver_webhook` registered under its real name: fails until `down_for` has passed."""

    down_for: timedelta
    attempts: list[float] = field(default_factory=list)  # workflow-clock seconds of each attempt
    failed: list[WebhookDeliveryFailed] = field(default_factory=list)

    def activities(self) -> list:  # type: ignore[type-arg]
        @activity.defn(name="deliver_webhook")
        async def deliver_webhook(inp: DeliverWebhookInput) -> DeliverWebhookOutput:
            info = activity.info()
            self.attempts.append(info.current_attempt_scheduled_time.timestamp())
            if info.current_attempt_scheduled_time - info.scheduled_time < self.down_for:
                raise ApplicationError("HTTP 503: receiver down", type="WebhookDeliveryError")
            return DeliverWebhookOutput(status="delivered", attempts=info.attempt, http_status=200)

        @activity.defn(name="fail_webhook_delivery")
        async def fail_webhook_delivery(inp: WebhookDeliveryFailed) -> None:
            self.failed.append(inp)

        return [deliver_webhook, fail_webhook_delivery]


async def _deliver(
    env: WorkflowEnvironment, receiver: FakeReceiver, window: timedelta
) -> DeliverWebhookOutput:
    async with Worker(
        env.client, task_queue=QUEUE, workflows=[WebhookDeliveryWorkflow], activities=receiver.activities()
    ):
        event_id = f"evt_{uuid.uuid4().hex}"
        return await env.client.execute_workflow(
            WebhookDeliveryWorkflow.run,
            DeliverWebhookInput(
                event_id=event_id, webhook_id="wh_1", delivery_window_seconds=int(window.total_seconds())
            ),
            id=delivery_workflow_id(event_id, "wh_1"),
            task_queue=QUEUE,
        )


async def test_receiver_down_for_an_hour_still_gets_the_event(env: WorkflowEnvironment) -> None:
    receiver = FakeReceiver(down_for=timedelta(hours=1))
    result = await _deliver(env, receiver, window=timedelta(days=3))
    assert result.status == "delivered"
    assert receiver.failed == []
    gaps = [b - a for a, b in zip(receiver.attempts, receiver.attempts[1:], strict=False)]
    # Exponential backoff: doubling from 1 s, capped at 10 minutes. (The test server schedules the
    # first retry at once, then follows the policy; its clock is coarse, hence the tolerance.)
    backoff = gaps[1:]
    assert backoff[0] == pytest.approx(1, abs=0.5)
    for prev, nxt in zip(backoff, backoff[1:], strict=False):
        assert nxt == pytest.approx(min(2 * prev, 600), rel=0.05, abs=0.5)
    assert max(gaps) <= 600 + 1
    came_back = receiver.attempts[0] + 3600
    assert receiver.attempts[-1] - came_back <= 600 + 1  # delivered within one max interval of coming back
    assert 10 < len(receiver.attempts) < 30


async def test_receiver_down_for_good_fails_after_the_window(env: WorkflowEnvironment) -> None:
    receiver = FakeReceiver(down_for=timedelta(days=365))
    result = await _deliver(env, receiver, window=timedelta(hours=6))
    assert result.status == "failed"
    assert len(receiver.failed) == 1 and receiver.failed[0].webhook_id == "wh_1"
    assert receiver.attempts[-1] - receiver.attempts[0] <= 6 * 3600


# --- end to end ----------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first `fail_first` requests."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    code = 500 if len(outer.requests) < outer.fail_first else 200
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> dict[str, tuple[dict[str, str], bytes]]:
        """Accepted deliveries, de-duplicated by webhook-id as a receiver should."""
        with self.lock:
            return {h["webhook-id"]: (h, b) for h, b, code in self.requests if code == 200}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_webhook_api_is_project_scoped_and_validates_urls(
    client: openai.OpenAI, other_client: openai.OpenAI
) -> None:
    created = client.webhooks.create(
        url="https://example.com/hook", name="mine", event_types=["thread.run.completed"]
    )  # type: ignore[list-item]
    assert created.signing_secret.startswith("whsec_") and created.id.startswith("wh_")
    assert created.event_types == ["thread.run.completed"]
    got = client.webhooks.retrieve(created.id)
    assert got.url == "https://example.com/hook" and "signing_secret" not in got.model_dump()
    assert created.id in [w.id for w in client.webhooks.list()]
    # /v1/webhooks is the same resource.
    assert client.get(f"/webhooks/{created.id}", cast_to=dict)["id"] == created.id  # type: ignore[index]

    assert created.id not in [w.id for w in other_client.webhooks.list()]
    with pytest.raises(openai.NotFoundError):
        other_client.webhooks.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other_client.webhooks.delete(created.id)

    for bad in ("ftp://example.com/x", "not a url", "http://"):
        with pytest.raises(openai.BadRequestError):
            client.webhooks.create(url=bad, name="bad", event_types=["thread.run.completed"])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError):
        client.webhooks.create(url="https://example.com/x", name="bad", event_types=["batch.completed"])

    assert client.webhooks.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(created.id)


def test_run_events_reach_a_flaky_receiver_exactly_once(
    client: openai.OpenAI, assistant, receiver: Receiver, stack
) -> None:  # type: ignore[no-untyped-def]
    hook = client.post(
        "/webhooks", body={"url": receiver.url}, cast_to=dict
    )  # all run status events by default
    secret = hook["signing_secret"]  # type: ignore[index]
    try:
        runs = [
            client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id,
                thread={"messages": [{"role": "user", "content": f"Say hello {i}."}]},
                max_completion_tokens=1,
                poll_interval_ms=200,
            )
            for i in range(2)
        ]
        expected = {r.id: r.status for r in runs}
        # One token cannot hold an answer to "Say hello i.": each run ends incomplete.
        assert set(expected.values()) == {"incomplete"}, expected
        # 500, 500, then backoff of 1 s and 2 s: a few seconds.
        _wait(lambda: len(receiver.events()) >= len(runs), 60, "one delivery per run")
        time.sleep(1.5)  # any stray duplicate would arrive now
        events = receiver.events()
        bodies = [json.loads(b) for _, b in events.values()]
        assert {e["data"]["id"]: e["data"]["status"] for e in bodies} == expected
        for headers, body in events.values():
            verify(secret, headers, body)
            client.webhooks.verify_signature(body, headers, secret=secret)
            event = json.loads(body)
            assert headers["webhook-id"] == event["id"] and event["object"] == "event"
            assert event["type"] == f"thread.run.{event['data']['status']}"
            assert not any(k.startswith("_") for k in event["data"])
        # The failed requests were retries of the same events (same ids), not new events.
        assert len(receiver.requests) >= len(runs) + 2
        assert {h["webhook-id"] for h, _, _ in receiver.requests} == set(events)
        with psycopg.connect(stack.database_url) as conn:
            rows = conn.execute(
                "SELECT status, attempts FROM webhook_deliveries WHERE webhook_id = %s", (hook["id"],)
            ).fetchall()  # type: ignore[index]
        assert sorted(r[0] for r in rows) == ["delivered"] * len(runs)
        assert sum(r[1] for r in rows) == len(receiver.requests)
    finally:
        client.delete(f"/webhooks/{hook['id']}", cast_to=dict)  # type: ignore[index]


def test_cli_creates_lists_and_deletes(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    from tests.stackutil import ASSISTANTS

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ASSISTANTS), "webhooks", *args], env=stack.env, capture_output=True, text=True, timeout=120
        )

    data_dir = str(stack.data_dir)
    out = cli("create", "--data-dir", data_dir, "--project", "default", "https://example.com/cli-hook")
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout.strip().splitlines()[-1])
    assert created["signing_secret"].startswith("whsec_")
    assert client.webhooks.retrieve(created["id"]).url == "https://example.com/cli-hook"  # the API sees it
    listed = [
        json.loads(line)
        for line in cli("list", "--data-dir", data_dir, "--project", "default").stdout.splitlines()
    ]
    assert created["id"] in [w["id"] for w in listed] and all("signing_secret" not in w for w in listed)
    assert cli("create", "--data-dir", data_dir, "ftp://example.com/x").returncode != 0
    assert cli("delete", "--data-dir", data_dir, created["id"]).returncode == 0
    assert cli("delete", "--data-dir", data_dir, created["id"]).returncode == 1
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(created["id"])


def test_requires_action_then_completed_are_two_events(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(fail_first=0)
    hook = client.webhooks.create(
        url=receiver.url,
        name="tools",
        event_types=["thread.run.requires_action", "thread.run.completed", "thread.run.incomplete"],
    )  # type: ignore[list-item]
    try:
        weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id,
            assistant_id=assistant.id,
            poll_interval_ms=200,
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        assert run.status == "requires_action", run.last_error
        [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
            poll_interval_ms=200,
        )
        _wait(lambda: len(receiver.events()) >= 2, 30, "two deliveries")
        events = {e["type"]: e for e in (json.loads(b) for _, b in receiver.events().values())}
        assert set(events) == {"thread.run.requires_action", f"thread.run.{done.status}"}
        waiting = events["thread.run.requires_action"]["data"]
        assert waiting["status"] == "requires_action"
        assert waiting["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"] == call.id
        assert {e["data"]["id"] for e in events.values()} == {run.id}
        for headers, body in receiver.events().values():
            client.webhooks.verify_signature(body, headers, secret=hook.signing_secret)
    finally:
        client.webhooks.delete(hook.id)
        receiver.close()


def test_background_responses_announce_their_end(client: openai.OpenAI, model_name: str) -> None:
    receiver = Receiver(fail_first=1)  # the first delivery is retried
    hook = client.webhooks.create(
        url=receiver.url,
        name="responses",
        event_types=["response.completed", "response.incomplete", "response.cancelled", "response.failed"],
    )  # type: ignore[list-item]
    try:
        bg = client.responses.create(model=model_name, input="Say hi.", background=True, max_output_tokens=16)
        long = client.responses.create(
            model=model_name, input="Write a long story.", background=True, max_output_tokens=2048
        )
        assert client.responses.cancel(long.id).status == "cancelled"
        plain = client.responses.create(model=model_name, input="Say hi.", max_output_tokens=16)
        _wait(lambda: len(receiver.events()) >= 2, 60, "two deliveries")
        deadline = time.monotonic() + 60
        while client.responses.retrieve(bg.id).status in ("queued", "in_progress"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ended = client.responses.retrieve(bg.id).status
        time.sleep(1)  # nothing more comes: the non-background response is not announced
        got = {}
        for headers, body in receiver.events().values():
            event = client.webhooks.unwrap(body, headers, secret=hook.signing_secret)  # verifies, parses
            got[event.data.id] = event.type
            assert event.id.startswith("evt_") and json.loads(body)["data"] == {"id": event.data.id}
        assert got == {bg.id: f"response.{ended}", long.id: "response.cancelled"}
        assert plain.id not in got
    finally:
        client.webhooks.delete(hook.id)
        receiver.close()
