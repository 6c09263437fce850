"""Issue 2 end to end: the official `openai` SDK against the real stack (embedded Postgres,
Temporal dev server, worker processes, the real SmolLM2 model)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import httpx
import openai
import pytest

from tests.conftest import REMOTE_MODEL, REMOTE_MODEL_LONG, SCRIPTED_MODEL
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)


def _text(message) -> str:  # type: ignore[no-untyped-def]
    return "".join(p.text.value for p in message.content if p.type == "text")


def test_models_and_auth(stack: StackHandle, client: openai.OpenAI) -> None:
    # The bundled in-process model first, then the session stack's remote models (vLLM, scripted).
    models = [m.id for m in client.models.list()]
    assert models == ["smollm2-135m-instruct", REMOTE_MODEL, REMOTE_MODEL_LONG, SCRIPTED_MODEL]
    for key in (None, "sk-wrong"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = httpx.get(stack.base_url + "/models", headers=headers)
        assert r.status_code == 401
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_assistant_crud_and_pagination(
    client: openai.OpenAI, other_client: openai.OpenAI, model_name: str
) -> None:
    created = [
        client.beta.assistants.create(model=model_name, name=f"a{i}", metadata={"i": str(i)})
        for i in range(5)
    ]
    got = client.beta.assistants.retrieve(created[0].id)
    assert (got.name, got.metadata, got.object) == ("a0", {"i": "0"}, "assistant")
    assert client.beta.assistants.update(created[0].id, instructions="new").instructions == "new"
    # Cursor pagination, newest first by default.
    page = client.beta.assistants.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    ids = [a.id for a in client.beta.assistants.list(limit=100, order="asc")]
    assert [a.id for a in created] == [i for i in ids if i in {a.id for a in created}]
    after = client.beta.assistants.list(limit=2, order="asc", after=created[1].id)
    assert [a.id for a in after.data] == [created[2].id, created[3].id]
    before = client.beta.assistants.list(limit=2, order="asc", before=created[3].id)
    assert [a.id for a in before.data] == [created[1].id, created[2].id]
    walked = [a.id for a in client.beta.assistants.list(limit=2, order="asc")]  # SDK auto-pagination
    assert len(walked) == len(ids) and walked == ids
    # Another project sees nothing.
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.retrieve(created[0].id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.assistants.delete(created[0].id)
    assert created[0].id not in [a.id for a in other_client.beta.assistants.list(limit=100)]
    assert client.beta.assistants.delete(created[0].id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created[0].id)


def test_bad_input_is_a_clear_400(stack: StackHandle, api_key: str, client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    h = {"Authorization": f"Bearer {api_key}"}
    cases = [
        ("POST", "/assistants", b"{not json", "content-type: json"),
        ("POST", "/assistants", json.dumps({"model": 5}).encode(), None),
        ("POST", "/assistants", json.dumps({"model": "nope"}).encode(), None),
        (
            "POST",
            "/assistants",
            json.dumps({"model": "smollm2-135m-instruct", "temperature": 9}).encode(),
            None,
        ),
        (
            "POST",
            "/assistants",
            json.dumps({"model": "smollm2-135m-instruct", "tools": [{"type": "browser"}]}).encode(),
            None,
        ),
        (
            "POST",
            "/assistants",
            json.dumps({"model": "smollm2-135m-instruct", "metadata": {"k": "v" * 600}}).encode(),
            None,
        ),
        ("POST", "/assistants", json.dumps({"model": "smollm2-135m-instruct", "bogus": 1}).encode(), None),
        ("GET", "/assistants?limit=101", None, None),
        ("GET", "/assistants?order=sideways", None, None),
        ("POST", "/threads", json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), None),
    ]
    for method, path, body, _ in cases:
        r = httpx.request(
            method, stack.base_url + path, headers={**h, "content-type": "application/json"}, content=body
        )
        assert r.status_code == 400, (path, body, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"]
    huge = httpx.post(
        stack.base_url + "/threads",
        headers={**h, "content-type": "application/json"},
        content=b'{"metadata": {"a": "' + b"x" * (3 * 1024 * 1024) + b'"}}',
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    thread = client.beta.threads.create()
    for path in (
        f"/threads/{thread.id}/runs/run_nope",
        "/threads/thread_nope/messages",
        "/assistants/asst_nope",
    ):
        assert httpx.get(stack.base_url + path, headers=h).status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope")
    with pytest.raises(openai.BadRequestError, match="Available models"):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, model="gpt-4o")


def test_thread_message_crud(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "one"}], metadata={"k": "v"})
    assert client.beta.threads.retrieve(thread.id).metadata == {"k": "v"}
    assert client.beta.threads.update(thread.id, metadata={"k": "w"}).metadata == {"k": "w"}
    m2 = client.beta.threads.messages.create(
        thread.id, role="user", content=[{"type": "text", "text": "two"}]
    )
    listed = client.beta.threads.messages.list(thread.id, order="asc")
    assert [_text(m) for m in listed] == ["one", "two"]
    assert client.beta.threads.messages.update(m2.id, thread_id=thread.id, metadata={"x": "y"}).metadata == {
        "x": "y"
    }
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.retrieve(thread.id)
    assert client.beta.threads.messages.delete(m2.id, thread_id=thread.id).deleted
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)


def test_run_completes_with_model_text_usage_and_step(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=200, metadata={"case": "basic"}
    )
    assert run.status == "completed", run.last_error
    assert run.started_at and run.completed_at and run.metadata == {"case": "basic"}
    assert run.usage and run.usage.prompt_tokens > 10 and run.usage.completion_tokens > 0
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens
    msgs = client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert len(msgs.data) == 1
    answer = msgs.data[0]
    assert answer.role == "assistant" and answer.assistant_id == assistant.id and answer.status == "completed"
    assert "paris" in _text(answer).lower()
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
    assert steps.data[0].step_details.message_creation.message_id == answer.id
    assert steps.data[0].usage.completion_tokens == run.usage.completion_tokens
    assert client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"k": "v"}).metadata == {
        "k": "v"
    }
    assert [r.id for r in client.beta.threads.runs.list(thread_id=thread.id)] == [run.id]


def test_create_and_run_and_max_completion_tokens(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Write a long story about a cat."}]},
        max_completion_tokens=6,
        poll_interval_ms=200,
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 6
    [msg] = client.beta.threads.messages.list(run.thread_id, run_id=run.id).data
    assert msg.status == "incomplete" and _text(msg)


def test_instructions_truncation_and_prompt_budget(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"Note {i}: " + "blah " * 60} for i in range(8)]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        instructions="Reply with one word.",
        additional_instructions="Be polite.",
        truncation_strategy={"type": "last_messages", "last_messages": 1},
        additional_messages=[{"role": "user", "content": "Say hello."}],
        max_completion_tokens=8,
        poll_interval_ms=200,
    )
    # Greedy: one short word, well inside the 8-token budget.
    assert run.status == "completed", run.incomplete_details
    assert run.instructions == "Reply with one word.\n\nBe polite."
    # Only the last message (plus instructions) was in the prompt.
    assert run.usage.prompt_tokens < 80
    full = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_prompt_tokens=256,
        truncation_strategy={"type": "last_messages", "last_messages": 20},
        poll_interval_ms=200,
    )
    assert full.status == "incomplete" and full.incomplete_details.reason == "max_prompt_tokens"
    auto = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_prompt_tokens=300,
        max_completion_tokens=4,
        poll_interval_ms=200,
    )
    # "auto" truncation drops old messages until the prompt fits; the short greedy answer completes.
    assert auto.status == "completed", auto.incomplete_details
    assert auto.usage.prompt_tokens <= 300


def test_active_run_locks_thread_and_cancel(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Write a very long essay about rivers."}]
    )
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=400
    )
    with pytest.raises(openai.BadRequestError, match="active"):
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    with pytest.raises(openai.BadRequestError, match="active run"):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"  # the workflow settles it
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=200)
    assert final.status == "cancelled" and final.cancelled_at
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    client.beta.threads.messages.create(thread.id, role="user", content="now it works")  # lock released


def test_run_is_a_visible_temporal_workflow(stack: StackHandle, client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        max_completion_tokens=3,
        poll_interval_ms=200,
    )
    health = httpx.get(stack.api_url + "/health").json()
    ui, ns = health["temporal_ui"], health["temporal_namespace"]
    with urllib.request.urlopen(f"{ui}/namespaces/{ns}/workflows/{run.id}", timeout=10) as resp:
        assert resp.status == 200

    async def describe():  # type: ignore[no-untyped-def]
        c = await stack.temporal(ns)
        d = await c.get_workflow_handle(run.id).describe()
        return d.workflow_type, (await d.memo()), d.typed_search_attributes

    import asyncio

    wf_type, memo, attrs = asyncio.run(describe())
    assert wf_type == "RunWorkflow"
    assert memo["assistant_id"] == assistant.id and memo["thread_id"] == run.thread_id
    assert {p.key.name: p.value for p in attrs}["AssistantId"] == assistant.id


def test_worker_sigkill_mid_generation_gives_one_message(
    stack: StackHandle, client: openai.OpenAI, assistant
) -> None:  # type: ignore[no-untyped-def]
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Write a long story about a dragon."}]
    )
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=120
    )
    deadline = time.monotonic() + 60
    while not (
        (msgs := client.beta.threads.messages.list(thread.id, run_id=run.id).data)
        and msgs[0].status == "in_progress"
    ):
        assert time.monotonic() < deadline, "no message in progress 60 s after the run started"
        time.sleep(0.1)
    old = stack.pids()["worker-inference"]
    os.kill(old, signal.SIGKILL)
    final = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=500, timeout=240)
    # The retry regenerates the long story up to its budget, as an unkilled run would.
    assert final.status == "incomplete", final.last_error
    assert final.incomplete_details.reason == "max_completion_tokens"
    assert stack.pids()["worker-inference"] != old  # `assistants up` restarted it
    msgs = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert len(msgs) == 1 and _text(msgs[0])
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert len(steps) == 1


def test_keys_list_and_revoke(stack: StackHandle) -> None:
    import subprocess

    from tests.stackutil import ASSISTANTS

    key = stack.create_key("revocable")
    assert (
        httpx.get(stack.base_url + "/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    cli = [str(ASSISTANTS), "keys"]
    listed = subprocess.run(
        [*cli, "list", "--data-dir", str(stack.data_dir)],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert key not in listed  # only a redacted form is ever shown again
    [line] = [ln for ln in listed.splitlines() if "\trevocable\t" in ln]
    key_id = line.split("\t")[0]
    assert line.endswith("active") and key[-4:] in line
    subprocess.run(
        [*cli, "revoke", "--data-dir", str(stack.data_dir), key_id],
        env=stack.env,
        check=True,
        capture_output=True,
    )
    r = httpx.get(stack.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
