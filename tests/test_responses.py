"""Issue 15: the Responses API through the official SDK (`client.responses.create / retrieve /
cancel / delete / input_items.list`), executed as runs on the same durable core. The bundled
model is tiny: these tests check shapes and plumbing, not answers."""

from __future__ import annotations

import json
import time

import jsonschema
import openai
import pytest

from tests.tool_requests import code_response, zorblat_store

pytestmark = pytest.mark.timeout(300)

TOKENS = 32  # test stacks set ASSISTANTS_MIN_COMPLETION_TOKENS=1
CALL_TOKENS = 96  # room for a function call's arguments or a small JSON object
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": WEATHER,
    "strict": True,
}


def _settled(client: openai.OpenAI, response_id: str, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        resp = client.responses.retrieve(response_id)
        if resp.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return resp
        time.sleep(0.3)


def test_plain_answer_shapes_and_input_items(client: openai.OpenAI, model_name: str) -> None:
    resp = client.responses.create(
        model=model_name,
        instructions="Be brief.",
        input="Say hello.",
        temperature=0,
        max_output_tokens=TOKENS,
        metadata={"k": "v"},
    )
    assert resp.object == "response" and resp.id.startswith("resp_")
    assert resp.status in ("completed", "incomplete"), resp.error
    [msg] = resp.output
    assert msg.type == "message" and msg.role == "assistant" and msg.content[0].type == "output_text"
    assert resp.output_text == msg.content[0].text and resp.output_text.strip()
    assert resp.usage is not None and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.instructions == "Be brief." and resp.metadata == {"k": "v"} and resp.model == model_name
    assert resp.max_output_tokens == TOKENS and resp.background is False

    again = client.responses.retrieve(resp.id)
    assert again.model_dump() == resp.model_dump()
    [item] = client.responses.input_items.list(resp.id).data
    assert item.type == "message" and item.role == "user" and item.content[0].text == "Say hello."

    # previous_response_id continues the same thread: the model sees the earlier turn
    follow = client.responses.create(
        model=model_name, previous_response_id=resp.id, input="And again.", max_output_tokens=TOKENS
    )
    assert follow.previous_response_id == resp.id and follow.status in ("completed", "incomplete")
    assert follow.output[0].type == "message" and follow.output[0].id != msg.id

    client.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_function_calling_round_trip(client: openai.OpenAI, model_name: str) -> None:
    first = client.responses.create(
        model=model_name,
        input="What's the weather like in Paris today?",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=CALL_TOKENS,
        temperature=0,  # the continued run keeps it: greedy, so whether it answers or calls again is fixed
    )
    assert first.status == "completed", first.error
    [call] = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(json.loads(call.arguments), WEATHER)

    # A stray output is refused and changes nothing.
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model=model_name,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
    second = client.responses.create(
        model=model_name,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21 C and sunny"}],
        max_output_tokens=TOKENS,
    )
    assert second.status in ("completed", "incomplete"), second.error
    assert second.output and all(
        o.type != "function_call" or o.call_id != call.call_id for o in second.output
    )
    assert any(o.type == "message" for o in second.output)
    [given] = client.responses.input_items.list(second.id).data
    assert given.type == "function_call_output" and given.call_id == call.call_id
    # The first response ends where it ended: its call, not the continuation.
    assert client.responses.retrieve(first.id).output == first.output


def test_structured_output_with_a_strict_json_schema(client: openai.OpenAI, model_name: str) -> None:
    schema = {
        "type": "object",
        # small enough for the tiny model to finish within the token budget
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "count": {"type": "integer"}},
        "required": ["answer", "count"],
        "additionalProperties": False,
    }
    resp = client.responses.create(
        model=model_name,
        input="Is the sky blue? How many suns are there?",
        text={"format": {"type": "json_schema", "name": "facts", "schema": schema, "strict": True}},
        max_output_tokens=CALL_TOKENS,
        temperature=0,  # greedy: a sampled integer can run on past the budget (seen once in CI load)
    )
    assert resp.status == "completed", resp.error
    jsonschema.validate(json.loads(resp.output_text), schema)
    assert resp.text.format.type == "json_schema"


def test_background_polled_to_completion_and_cancel(client: openai.OpenAI, model_name: str) -> None:
    resp = client.responses.create(
        model=model_name, input="Count to five.", background=True, max_output_tokens=TOKENS
    )
    assert resp.background is True and resp.status in ("queued", "in_progress") and resp.output == []
    done = _settled(client, resp.id)
    assert done.status in ("completed", "incomplete") and done.output[0].type == "message"
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(resp.id)  # already completed

    long = client.responses.create(
        model=model_name, input="Write a long story.", background=True, max_output_tokens=2048
    )
    cancelled = client.responses.cancel(long.id)
    assert cancelled.id == long.id and cancelled.status == "cancelled"
    assert client.responses.retrieve(long.id).status == "cancelled"


def test_thread_continued_as_a_conversation(client: openai.OpenAI, model_name: str) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "My name is Ada."}])
    resp = client.responses.create(
        model=model_name, conversation=thread.id, input="What is my name?", max_output_tokens=TOKENS
    )
    assert resp.status in ("completed", "incomplete") and resp.conversation.id == thread.id
    msgs = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in msgs] == ["user", "user", "assistant"]
    assert msgs[2].id == resp.output[0].id and msgs[2].content[0].text.value == resp.output_text
    [run] = client.beta.threads.runs.list(thread.id).data  # the response ran as a run
    assert run.status == "completed" or run.status == "incomplete"
    items = client.conversations.items.list(thread.id, order="asc").data
    assert [i.id for i in items] == [m.id for m in msgs]
    [given] = client.responses.input_items.list(resp.id).data
    assert given.id == msgs[1].id


def test_errors(client: openai.OpenAI, other_client: openai.OpenAI, model_name: str) -> None:
    for call in (
        lambda: client.responses.retrieve("resp_nope"),
        lambda: client.responses.delete("resp_nope"),
        lambda: client.responses.cancel("resp_nope"),
        lambda: client.responses.input_items.list("resp_nope"),
        lambda: client.responses.create(model=model_name, input="x", previous_response_id="resp_nope"),
        lambda: client.responses.create(model=model_name, input="x", conversation="conv_nope"),
    ):
        with pytest.raises(openai.NotFoundError) as nf:
            call()
        assert nf.value.code == "not_found"
    bad_inputs = [
        {"input": [{"type": "no_such_item", "id": "x"}]},
        {"input": "x", "tools": [{"type": "mcp", "server_label": "m", "server_url": "http://127.0.0.1:9"}]},
        {"input": "x", "max_output_tokens": 8},
        {"input": "x", "temperature": 5},
        {"input": "x", "text": {"format": {"type": "json_schema", "name": "bad name!", "schema": {}}}},
        {"input": [{"type": "function_call_output", "call_id": "call_x", "output": "y"}]},
        {"input": "x", "no_such_param": 1},
    ]
    for kwargs in bad_inputs:
        extra = {"extra_body": {"no_such_param": 1}} if "no_such_param" in kwargs else {}
        kwargs.pop("no_such_param", None)
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=model_name, **kwargs, **extra)  # type: ignore[call-overload]
        assert bad.value.type == "invalid_request_error", kwargs
    with pytest.raises(openai.BadRequestError) as unknown_model:
        client.responses.create(model="no-such-model", input="x")
    assert unknown_model.value.code == "model_not_found"
    made = client.responses.create(model=model_name, input="Hi", background=True, max_output_tokens=TOKENS)
    with pytest.raises(openai.NotFoundError):
        other_client.responses.retrieve(made.id)  # project scoping
    _settled(client, made.id)


def test_stream_helper_and_resume(client: openai.OpenAI, model_name: str) -> None:
    with client.responses.stream(model=model_name, input="Say hello.", max_output_tokens=TOKENS) as stream:
        events = list(stream)
    # The tiny model may run out of tokens: then the stream ends with response.incomplete, and
    # the SDK's get_final_response() (which wants response.completed) is not for it.
    final = events[-1].response
    names = [e.type for e in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    for name in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert name in names, names
    assert names[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and final.output_text
    assert client.responses.retrieve(final.id).output_text == final.output_text

    # Resuming replays the same events after the given number.
    with client.responses.stream(response_id=final.id, starting_after=2) as resumed:
        again = list(resumed)
    assert [(e.type, e.sequence_number) for e in again] == [(e.type, e.sequence_number) for e in events[3:]]


def test_stream_function_call_and_outputs(client: openai.OpenAI, model_name: str) -> None:
    with client.responses.stream(
        model=model_name,
        input="What's the weather like in Paris today?",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=CALL_TOKENS,
        temperature=0,  # the continued run keeps it: greedy, so whether it answers or calls again is fixed
    ) as stream:
        events = list(stream)
        first = stream.get_final_response()
    [call] = [o for o in first.output if o.type == "function_call"]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and done[0].arguments == call.arguments
    with client.responses.stream(
        model=model_name,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}],
        max_output_tokens=TOKENS,
    ) as stream:
        events = list(stream)
    second = events[-1].response  # completed, or incomplete when the tiny model runs out of tokens
    assert events[0].type == "response.created" and events[0].response.id == second.id
    assert second.status in ("completed", "incomplete") and second.output[0].type == "message"
    assert all(o.type != "function_call" for o in second.output)


def test_built_in_tools_become_output_items(client: openai.OpenAI, model_name: str) -> None:
    store = zorblat_store(client, "zoo-responses")
    searched = client.responses.create(
        model=model_name,
        input="What does the zorblat eat?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        tool_choice={"type": "file_search"},
        temperature=0,
        max_output_tokens=80,
        include=["file_search_call.results"],
    )
    assert searched.status in ("completed", "incomplete"), searched.error
    [call] = [o for o in searched.output if o.type == "file_search_call"]
    assert call.status == "completed" and call.results and call.results[0].filename == "zorblat.md"
    assert searched.output[-1].type == "message"

    ran = client.responses.create(**code_response(model_name))
    assert ran.status in ("completed", "incomplete"), ran.error
    [code] = [o for o in ran.output if o.type == "code_interpreter_call"]
    # Its outputs only with include=["code_interpreter_call.outputs"] (test_responses_stream_tools).
    assert isinstance(code.code, str) and code.code and code.outputs is None
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model=model_name, input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_nope"]}]
        )


def _gone(client: openai.OpenAI, response_id: str, timeout: float = 10) -> bool:
    """A streamed store=false response is forgotten when its stream ends: moments after the last event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.responses.retrieve(response_id)
        except openai.NotFoundError:
            return True
        time.sleep(0.2)
    return False


def _newest_thread(client: openai.OpenAI) -> str | None:
    page = client.get("/threads", cast_to=dict, options={"params": {"limit": 1}})  # type: ignore[type-var]
    return page["data"][0]["id"] if page["data"] else None


def test_store_false_is_not_kept(client: openai.OpenAI, model_name: str) -> None:
    before = _newest_thread(client)
    resp = client.responses.create(model=model_name, input="Say hi.", store=False, max_output_tokens=TOKENS)
    assert _newest_thread(client) == before  # the thread made for it alone went with it
    assert resp.store is False and resp.status in ("completed", "incomplete"), resp.error
    assert resp.output_text  # answered in full, then forgotten
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(resp.id)
    with pytest.raises(openai.NotFoundError) as nf:
        client.responses.create(model=model_name, previous_response_id=resp.id, input="Again.")
    assert nf.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=model_name, input="x", store=False, background=True)
    assert bad.value.param == "background"

    with client.responses.stream(
        model=model_name, input="Say hello.", store=False, max_output_tokens=TOKENS
    ) as stream:
        events = list(stream)
    streamed = events[-1].response
    assert streamed.store is False and streamed.output_text
    assert _gone(client, streamed.id)

    # In a conversation, the response goes and the conversation keeps its items.
    conv = client.conversations.create()
    kept = client.responses.create(
        model=model_name, conversation=conv.id, input="Say hi.", store=False, max_output_tokens=TOKENS
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    items = client.conversations.items.list(conv.id, order="asc").data
    assert items[0].type == "message" and items[0].role == "user"
    assert [i.id for i in items[1:]] == [o.id for o in kept.output]


def test_truncation_auto_drops_oldest_turns_disabled_fails_as_too_long(
    client: openai.OpenAI, model_name: str
) -> None:
    """Three long turns and a question outgrow the 8192-token context: with `truncation` "auto"
    (what a response does unless told otherwise, and echoes) the oldest turns are dropped and it
    answers; with "disabled" it fails with `context_length_exceeded`, as the prompt does not fit."""
    long_turn = " ".join(f"alpha{i} beta{i}" for i in range(700))  # ~3500 tokens
    items = [{"role": "user", "content": f"Note {n}: {long_turn}"} for n in range(3)]
    items.append({"role": "user", "content": "Say ok."})
    full = client.responses.input_tokens.count(model=model_name, input=items, truncation="disabled")
    assert full.input_tokens > 8192  # the whole prompt: more than the context holds
    fitted = client.responses.input_tokens.count(model=model_name, input=items)
    assert fitted.input_tokens < 8192

    auto = client.responses.create(model=model_name, input=items, temperature=0, max_output_tokens=TOKENS)
    assert auto.truncation == "auto" and auto.status in ("completed", "incomplete"), auto.error
    assert auto.usage is not None and auto.usage.input_tokens == fitted.input_tokens
    assert auto.output and auto.output[0].type == "message"

    refused = client.responses.create(
        model=model_name, input=items, truncation="disabled", temperature=0, max_output_tokens=TOKENS
    )
    assert refused.truncation == "disabled" and refused.status == "failed"
    assert refused.error is not None and refused.error.code == "context_length_exceeded"
    assert refused.incomplete_details is None
    assert refused.output == [] and (refused.usage is None or refused.usage.output_tokens == 0)
