"""Tool calls stream (issue 14, item 2), through the official SDK's streaming helpers against the
real stack: a code_interpreter call's input arrives in step deltas while the model writes it, and
its outputs arrive in a step delta when the sandbox returns, so `on_tool_call_delta` fires and
the snapshot the SDK accumulates equals the stored step."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming import AssistantEventHandler

pytestmark = pytest.mark.timeout(300)


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.created: list[Any] = []
        self.deltas: list[Any] = []
        self.done: list[Any] = []

    def on_tool_call_created(self, tool_call: Any) -> None:
        self.created.append(tool_call)

    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        self.deltas.append(delta)

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.done.append(tool_call)


def test_code_interpreter_input_and_outputs_stream(client: openai.OpenAI, model_name: str) -> None:
    a = client.beta.assistants.create(model=model_name, tools=[{"type": "code_interpreter"}], temperature=0)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Use Python to compute 6 * 7."}]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=a.id,
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=120,
        event_handler=handler,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error or run.incomplete_details
    ci = [d for d in handler.deltas if d.type == "code_interpreter"]
    inputs = [d.code_interpreter.input for d in ci if d.code_interpreter and d.code_interpreter.input]
    outputs = [
        o for d in ci if d.code_interpreter and d.code_interpreter.outputs for o in d.code_interpreter.outputs
    ]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    stored = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert handler.created and handler.created[0].type == "code_interpreter"
    assert len(inputs) >= 2 and "".join(inputs) == stored.code_interpreter.input  # streamed as written
    assert outputs and [o.type for o in outputs] == [o.type for o in stored.code_interpreter.outputs]
    assert handler.done and handler.done[0].code_interpreter.outputs  # the SDK's snapshot holds them


GET_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# One example turn in the thread: greedy, the bundled SmolLM2 then calls the tool by itself.
EXAMPLE_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'


def _auto_call(client: openai.OpenAI, model_name: str, max_tokens: int) -> tuple[Recorder, Any, Any]:
    """A run in which the model calls get_weather by itself (tool_choice auto), streamed."""
    a = client.beta.assistants.create(model=model_name, tools=[GET_WEATHER], temperature=0)  # type: ignore[list-item]
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": EXAMPLE_CALL},
            {"role": "user", "content": "Weather in Paris?"},
        ]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=a.id, max_completion_tokens=max_tokens, event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action", run.last_error or run.incomplete_details
    [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    [stored] = steps[0].step_details.tool_calls  # type: ignore[union-attr]
    assert stored.id == call.id and stored.function.arguments == call.function.arguments
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    return handler, call, stored


def _argument_pieces(handler: Recorder) -> list[str]:
    return [d.function.arguments for d in handler.deltas if d.type == "function" and d.function.arguments]


def test_function_call_in_auto_mode_streams_its_arguments(client: openai.OpenAI, model_name: str) -> None:
    handler, call, stored = _auto_call(client, model_name, 60)
    pieces = _argument_pieces(handler)
    assert len(pieces) >= 2 and "".join(pieces) == call.function.arguments  # streamed as written
    assert [c.id for c in handler.created] == [call.id]
    # The snapshot the SDK accumulated from the deltas is the stored call (plus the deltas' index).
    assert [d.model_dump(exclude={"index"}) for d in handler.done] == [stored.model_dump()]


def test_call_cut_by_the_token_budget_is_continued_as_streamed(
    client: openai.OpenAI, model_name: str
) -> None:
    """19 tokens stop the model inside the arguments (`{"city":`): the rest is generated under the
    schema from there and streams too, so the stored arguments are the streamed text, not a rewrite."""
    handler, call, stored = _auto_call(client, model_name, 19)
    pieces = _argument_pieces(handler)
    assert len(pieces) >= 2 and "".join(pieces) == call.function.arguments
    assert [d.model_dump(exclude={"index"}) for d in handler.done] == [stored.model_dump()]


RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def test_file_search_streams_its_call_and_results(client: openai.OpenAI, model_name: str) -> None:
    store = client.vector_stores.create(name="streamed-search")
    doc = b"# Zorblat\nThe zorblat is a purple fish that lives in Lake Quibble and eats moonweed at night.\n"
    vs_file = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("zorblat.md", doc))
    a = client.beta.assistants.create(
        model=model_name,
        temperature=0,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What does the zorblat eat?"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=a.id,
        tool_choice={"type": "file_search"},
        include=[RESULT_CONTENT],
        max_completion_tokens=60,
        event_handler=handler,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status in ("completed", "incomplete"), run.last_error
    assert handler.created and handler.created[0].type == "file_search"
    results = [
        r
        for d in handler.deltas
        if d.type == "file_search"
        for r in (d.file_search or {}).get("results") or []
    ]
    assert results and results[0]["file_id"] == vs_file.id
    # The results stream with their content, since the run asked for it.
    assert "moonweed" in results[0]["content"][0]["text"]
