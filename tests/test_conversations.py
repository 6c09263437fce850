"""Issue 15: the Conversations API through the official SDK (`client.conversations.*`,
`client.conversations.items.*`). A conversation is a thread: one made with
`client.beta.threads` reads as a conversation, and a conversation reads as a thread."""

from __future__ import annotations

import openai
import pytest

from tests.tool_requests import code_response

pytestmark = pytest.mark.timeout(300)


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Hello"}], metadata={"topic": "demo"}
    )
    assert conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    got = client.conversations.retrieve(conv.id)
    assert got.id == conv.id and got.created_at == conv.created_at
    updated = client.conversations.update(conv.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    # The same row through the Assistants API.
    thread = client.beta.threads.retrieve(conv.id)
    assert thread.metadata == {"topic": "other"}
    [msg] = client.beta.threads.messages.list(conv.id).data
    assert msg.role == "user" and msg.content[0].text.value == "Hello"
    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted is True and deleted.id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_items_create_list_retrieve_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    made = client.conversations.items.create(
        conv.id,
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "two"}]},
            {"type": "message", "role": "user", "content": "three"},
        ],
    )
    assert [i.type for i in made.data] == ["message"] * 3
    assert made.first_id == made.data[0].id and made.last_id == made.data[-1].id
    ids = [i.id for i in made.data]

    asc = client.conversations.items.list(conv.id, order="asc")
    assert [i.id for i in asc.data] == ids and asc.has_more is False
    first = asc.data[0]
    assert first.role == "user" and first.content[0].type == "input_text" and first.content[0].text == "one"
    assert asc.data[1].content[0].type == "output_text" and asc.data[1].content[0].text == "two"
    desc = client.conversations.items.list(conv.id, limit=2)  # newest first by default
    assert [i.id for i in desc.data] == ids[::-1][:2] and desc.has_more is True
    rest = client.conversations.items.list(conv.id, limit=2, after=desc.data[-1].id)
    assert [i.id for i in rest.data] == [ids[0]]
    # the SDK's auto-pagination walks the cursor
    assert [i.id for i in client.conversations.items.list(conv.id, limit=1, order="asc")] == ids

    item = client.conversations.items.retrieve(ids[1], conversation_id=conv.id)
    assert item.id == ids[1] and item.role == "assistant"
    after_delete = client.conversations.items.delete(ids[1], conversation_id=conv.id)
    assert after_delete.object == "conversation" and after_delete.id == conv.id
    assert [i.id for i in client.conversations.items.list(conv.id, order="asc").data] == [ids[0], ids[2]]


def test_thread_made_with_assistants_reads_as_a_conversation(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "from assistants"}])
    client.beta.threads.messages.create(thread.id, role="assistant", content="a reply")
    conv = client.conversations.retrieve(thread.id)
    assert conv.id == thread.id and conv.object == "conversation"
    items = client.conversations.items.list(thread.id, order="asc").data
    assert [(i.role, i.content[0].text) for i in items] == [
        ("user", "from assistants"),
        ("assistant", "a reply"),
    ]
    # continued with Conversations, read back with Assistants
    client.conversations.items.create(
        thread.id, items=[{"type": "message", "role": "user", "content": "more"}]
    )
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread.id, order="asc").data]
    assert texts == ["from assistants", "a reply", "more"]


def test_errors_use_the_envelope(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.conversations.retrieve("conv_nope")
    assert nf.value.code == "not_found" and "conv_nope" in nf.value.message
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list("conv_nope")
    conv = client.conversations.create()
    with pytest.raises(openai.NotFoundError):
        other_client.conversations.retrieve(conv.id)  # another project's id does not exist
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve("msg_nope", conversation_id=conv.id)
    with pytest.raises(openai.BadRequestError) as bad:
        client.conversations.items.create(conv.id, items=[{"type": "reasoning", "summary": []}])
    assert bad.value.param is not None
    too_many = [{"type": "message", "role": "user", "content": str(i)} for i in range(21)]
    with pytest.raises(openai.BadRequestError):
        client.conversations.create(items=too_many)
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(conv.id, items=too_many)


CITY_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_function_calls_and_outputs_are_items(client: openai.OpenAI, model_name: str) -> None:
    conv = client.conversations.create()
    first = client.responses.create(
        model=model_name,
        conversation=conv.id,
        input="What's the weather like in Paris today?",
        tools=[CITY_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=96,
    )
    assert first.status == "completed", first.error
    [call] = [o for o in first.output if o.type == "function_call"]
    second = client.responses.create(
        model=model_name,
        conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21 C and sunny"}],
        max_output_tokens=32,
    )
    assert second.status in ("completed", "incomplete"), second.error
    [given] = client.responses.input_items.list(second.id).data

    items = client.conversations.items.list(conv.id, order="asc").data
    user, fc, fco, *after = items
    assert user.type == "message" and user.role == "user"
    assert fc.type == "function_call" and (fc.id, fc.call_id, fc.name, fc.arguments) == (
        call.id,
        call.call_id,
        call.name,
        call.arguments,
    )
    assert fco.type == "function_call_output" and fco.call_id == call.call_id
    assert fco.output == "21 C and sunny" and fco.id == given.id  # one item, read two ways
    # what the second response made follows, in its order
    assert [i.id for i in after] == [o.id for o in second.output]

    # newest first by default; the cursor walks across item types
    assert [i.id for i in client.conversations.items.list(conv.id).data] == [i.id for i in items][::-1]
    page = client.conversations.items.list(conv.id, order="asc", limit=1, after=user.id)
    assert [i.id for i in page.data] == [fc.id] and page.has_more is True
    got = client.conversations.items.retrieve(fco.id, conversation_id=conv.id)
    assert got.type == "function_call_output" and got.output == "21 C and sunny"
    assert client.conversations.items.retrieve(fc.id, conversation_id=conv.id).type == "function_call"
    with pytest.raises(openai.NotFoundError):  # only messages can be deleted
        client.conversations.items.delete(fc.id, conversation_id=conv.id)


def test_built_in_tool_calls_are_items(client: openai.OpenAI, model_name: str) -> None:
    """A code_interpreter call a response made is one of its conversation's items, between the
    question and the answer, the same item the response's output shows."""
    conv = client.conversations.create()
    ran = client.responses.create(
        **code_response(model_name, conversation=conv.id, include=["code_interpreter_call.outputs"])
    )
    assert ran.status in ("completed", "incomplete"), ran.error
    items = client.conversations.items.list(conv.id, order="asc").data
    user, *made = items
    assert user.type == "message" and user.role == "user"
    assert [(i.id, i.type) for i in made] == [(o.id, o.type) for o in ran.output]
    [code] = [i for i in made if i.type == "code_interpreter_call"]
    [out] = [o for o in ran.output if o.type == "code_interpreter_call"]
    assert code.model_dump() == out.model_dump() and code.outputs
    got = client.conversations.items.retrieve(code.id, conversation_id=conv.id)
    assert got.type == "code_interpreter_call" and got.code == out.code
