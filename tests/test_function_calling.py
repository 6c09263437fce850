"""Issue 3 end to end: forced and required tool calls pause the run in requires_action with
arguments that parse and validate; outputs resume it; bad submissions change nothing."""

from __future__ import annotations

import json
import os
import signal
import time

import jsonschema
import openai
import pytest

from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER,
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]
FORCE = {"type": "function", "function": {"name": "get_weather"}}


def _ask(client: openai.OpenAI, text: str):  # type: ignore[no-untyped-def]
    return client.beta.threads.create(messages=[{"role": "user", "content": text}])


def test_forced_call_pauses_validates_and_resumes(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = _ask(client, "What's the weather like in Paris today?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=TOOLS, tool_choice=FORCE, poll_interval_ms=200
    )
    assert run.status == "requires_action", run.last_error
    assert run.expires_at and run.expires_at > time.time()
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.id.startswith("call_") and call.type == "function" and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert step.type == "tool_calls" and step.status == "in_progress"

    for bad in (
        [{"tool_call_id": "call_nope", "output": "x"}],
        [{"tool_call_id": call.id, "output": "a"}, {"tool_call_id": call.id, "output": "b"}],
    ):
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(run_id=run.id, thread_id=thread.id, tool_outputs=bad)
    still = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert (
        still.status == "requires_action"
        and still.required_action.submit_tool_outputs.tool_calls[0].id == call.id
    )

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "21 C and sunny"}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].status == "completed"
    assert steps[0].step_details.tool_calls[0].function.output == "21 C and sunny"
    with pytest.raises(openai.BadRequestError):  # a finished run accepts no outputs
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "again"}]
        )


def test_required_calls_and_none_answers(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = _ask(client, "What time is it in Tokyo?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        poll_interval_ms=200,
    )
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and calls[0].function.name in ("get_weather", "get_time")
    schema = next(
        t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == calls[0].function.name
    )
    jsonschema.validate(json.loads(calls[0].function.arguments), schema)
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)  # cancel while waiting
    assert (
        client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=200).status == "cancelled"
    )

    none = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tools=TOOLS,
        tool_choice="none",
        max_completion_tokens=20,
        poll_interval_ms=200,
    )
    # Greedy, a short plain answer inside the 20-token budget.
    assert none.status == "completed", none.incomplete_details
    assert none.required_action is None
    assert [s.type for s in client.beta.threads.runs.steps.list(run_id=none.id, thread_id=thread.id)] == [
        "message_creation"
    ]


def test_tool_definitions_are_validated(client: openai.OpenAI, model_name: str) -> None:
    fn = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    bad = [
        [fn, fn],  # duplicate names
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 5}}}],
        [{"type": "function", "function": {"name": "bad name!", "parameters": {"type": "object"}}}],
        [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)],
        [{"type": "web_browser"}],
    ]
    for tools in bad:
        with pytest.raises(openai.BadRequestError):
            client.beta.assistants.create(model=model_name, tools=tools)
    a = client.beta.assistants.create(model=model_name, tools=[fn])
    thread = _ask(client, "hi")
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=a.id,
            tool_choice={"type": "function", "function": {"name": "missing"}},
        )


def test_json_schema_output_parses_every_time(client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    schema = {
        "type": "object",
        # Bounded, so a sampled output always fits the token budget (the grammar enforces it).
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    for prompt in ("Invent a person.", "Describe Ada Lovelace as JSON.", "Give me a random user."):
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": prompt}]},
            response_format=fmt,
            temperature=0.7,
            max_completion_tokens=120,
            poll_interval_ms=200,
        )
        assert run.status == "completed", (run.status, run.last_error)
        [msg] = client.beta.threads.messages.list(run.thread_id, run_id=run.id).data
        jsonschema.validate(json.loads(msg.content[0].text.value), schema)
    obj = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "List three colors in JSON."}]},
        response_format={"type": "json_object"},
        max_completion_tokens=60,
        poll_interval_ms=200,
    )
    [msg] = client.beta.threads.messages.list(obj.thread_id, run_id=obj.id).data
    assert obj.status == "completed" and isinstance(json.loads(msg.content[0].text.value), dict)


def test_waiting_run_survives_worker_kill(stack: StackHandle, client: openai.OpenAI, assistant) -> None:  # type: ignore[no-untyped-def]
    thread = _ask(client, "Weather in Oslo?")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=TOOLS, tool_choice=FORCE, poll_interval_ms=200
    )
    assert run.status == "requires_action"
    pids = stack.pids()
    for role in ("worker-runs", "worker-inference"):
        os.kill(pids[role], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while not (
        stack.healthy()
        and all(stack.pids().get(r) not in (None, pids[r]) for r in ("worker-runs", "worker-inference"))
    ):
        assert time.monotonic() < deadline, f"workers not restarted within 120 s: {stack.pids()}"
        time.sleep(0.5)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "-3 C, snow"}],
        poll_interval_ms=200,
    )
    assert done.status == "completed", done.last_error
