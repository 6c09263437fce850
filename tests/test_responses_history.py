"""Issue 25: a response's input may be any item history, sent statelessly (no
previous_response_id), as the Agents SDK, the AI SDK and Codex send it: calls and outputs
(including calls this server never made), custom / shell / apply_patch calls, reasoning items,
item references, every message role and content part. Unpaired calls are a 400 naming the item.
And the tool types those clients declare: namespace groups, custom tools, client shells."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest

from activities.prompt import load_turn_context
from assistants.db.pool import open_pool
from tests.stackutil import StackHandle
from tests.test_responses import CALL_TOKENS, TOKENS, WEATHER_TOOL

pytestmark = pytest.mark.timeout(300)

ANSWER = "The weather in Paris is 21 C and sunny, says the weather service."


def _history(call_id: str) -> list[dict]:
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "type": "function_call",
            "call_id": call_id,
            "name": "get_weather",
            "arguments": '{"city": "Paris", "unit": "c"}',
        },
        {"type": "function_call_output", "call_id": call_id, "output": ANSWER},
    ]


def _forced_weather_call(client: openai.OpenAI, model_name: str, **more: Any) -> Any:
    """A response that ends in a (forced) get_weather call."""
    return client.responses.create(
        model=model_name,
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=CALL_TOKENS,
        temperature=0,
        **more,
    )


def test_stateless_history_after_a_call_continues(client: openai.OpenAI, model_name: str) -> None:
    first = _forced_weather_call(client, model_name)
    [call] = [o for o in first.output if o.type == "function_call"]
    assert first.status == "completed"
    # The whole history again, no previous_response_id: what the Agents SDK sends by default.
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": ANSWER},
    ]
    second = client.responses.create(
        model=model_name, input=history, tools=[WEATHER_TOOL], max_output_tokens=TOKENS, temperature=0
    )
    assert second.status in ("completed", "incomplete"), second.error
    assert second.previous_response_id is None
    assert any(o.type == "message" for o in second.output)
    listed = client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in listed] == ["message", "function_call", "function_call_output"]
    assert listed[2].call_id == call.call_id and listed[2].output == ANSWER
    # The first response still reads as it ended (its run, answered elsewhere, was closed).
    assert client.responses.retrieve(first.id).output == first.output
    assert client.responses.retrieve(first.id).status == "completed"


def test_the_model_reads_replayed_calls_and_outputs(client: openai.OpenAI, model_name: str) -> None:
    """The history renders into the prompt: the output's text costs tokens, in the count and
    in the response's own usage."""
    plain = [{"role": "user", "content": "What is the weather in Paris?"}]
    with_call = _history("call_fromelsewhere1")
    count = lambda items: client.post(  # noqa: E731
        "/responses/input_tokens",
        body={"model": model_name, "input": items},
        cast_to=object,
    )["input_tokens"]
    assert count(with_call) > count(plain) + 10
    # Without tools on offer the turn renders once: its input is exactly what was counted.
    resp = client.responses.create(model=model_name, input=with_call, max_output_tokens=TOKENS, temperature=0)
    assert resp.status in ("completed", "incomplete"), resp.error
    assert resp.usage is not None and resp.usage.input_tokens == count(with_call)


def test_unpaired_calls_are_refused_naming_the_item(client: openai.OpenAI, model_name: str) -> None:
    cases = [
        (_history("call_a")[:2], "input[1]"),  # a call with no output
        ([_history("call_b")[0], _history("call_b")[2]], "input[1]"),  # an output with no call
        ([_history("call_c")[0], _history("call_c")[2], _history("call_c")[1]], "input[1]"),  # out of order
        ([{"type": "function_call_output", "call_id": "call_d"}], "input[0]"),  # no output given
    ]
    for items, param in cases:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=model_name, input=items, tools=[WEATHER_TOOL])
        assert bad.value.param == param, (items, bad.value.message)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=model_name, input=[{"type": "item_reference", "id": "msg_nope"}])
    assert missing.value.param == "input[0].id"


def test_every_item_type_as_history(client: openai.OpenAI, model_name: str) -> None:
    first = client.responses.create(
        model=model_name, input="Remember the word teal.", max_output_tokens=TOKENS
    )
    [earlier] = client.responses.input_items.list(first.id).data
    notes = base64.b64encode(b"The launch code is teal.").decode()
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"type": "item_reference", "id": earlier.id},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Read this file."},
                {"type": "input_file", "filename": "notes.txt", "file_data": notes},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque-from-elsewhere"},
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "I read it.", "annotations": []},
                {"type": "refusal", "refusal": "I will not share codes."},
            ],
        },
        {"type": "custom_tool_call", "call_id": "call_ct", "name": "grep", "input": "teal"},
        {"type": "custom_tool_call_output", "call_id": "call_ct", "output": "notes.txt:1: teal"},
        {
            "type": "local_shell_call",
            "id": "lsh_1",
            "call_id": "call_ls",
            "status": "completed",
            "action": {"type": "exec", "command": ["ls"], "env": {}},
        },
        {"type": "local_shell_call_output", "id": "call_ls", "output": "notes.txt"},
        {"type": "shell_call", "call_id": "call_sh", "action": {"commands": ["pwd"]}, "status": "completed"},
        {
            "type": "shell_call_output",
            "call_id": "call_sh",
            "output": [{"stdout": "/work\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}],
        },
        {
            "type": "apply_patch_call",
            "call_id": "call_ap",
            "status": "completed",
            "operation": {"type": "create_file", "path": "a.txt", "diff": "+teal\n"},
        },
        {"type": "apply_patch_call_output", "call_id": "call_ap", "status": "completed", "output": "done"},
        {
            "type": "file_search_call",
            "id": "fs_1",
            "status": "completed",
            "queries": ["teal"],
            "results": [{"file_id": "file-x", "filename": "notes.txt", "score": 0.9, "text": "teal"}],
        },
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "teal"},
        },
        {"role": "user", "content": "What was the word?"},
    ]
    resp = client.responses.create(model=model_name, input=items, max_output_tokens=TOKENS, temperature=0)
    assert resp.status in ("completed", "incomplete"), resp.error
    listed = client.responses.input_items.list(resp.id, order="asc", limit=100).data
    # The reference comes back as the message it named.
    assert [i.type for i in listed] == ["message"] * 3 + [i.get("type", "message") for i in items[3:]]
    reasoning = [i for i in listed if i.type == "reasoning"]
    assert reasoning[0].encrypted_content == "opaque-from-elsewhere"


def test_client_tool_types_come_back_in_their_own_form(client: openai.OpenAI, model_name: str) -> None:
    tools = [
        {
            "type": "namespace",
            "name": "weather",
            "description": "Weather tools",
            "tools": [{**WEATHER_TOOL, "strict": False}],
        },
        {"type": "custom", "name": "shout", "description": "Shout a word", "format": {"type": "text"}},
        {"type": "shell"},
        {"type": "apply_patch"},
        {"type": "local_shell"},
        {"type": "web_search"},  # accepted, not offered: no search backend is configured
    ]
    ns = client.responses.create(
        model=model_name,
        input="Weather in Oslo?",
        tools=tools,
        tool_choice={"type": "function", "name": "get_weather", "namespace": "weather"},  # type: ignore[typeddict-unknown-key]
        max_output_tokens=CALL_TOKENS,
        temperature=0,
    )
    [call] = [o for o in ns.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.namespace == "weather"
    assert {t.type for t in ns.tools} >= {"namespace", "custom", "shell", "web_search"}

    custom = client.responses.create(
        model=model_name,
        input="Shout the word hello.",
        tools=tools,
        tool_choice={"type": "custom", "name": "shout"},
        max_output_tokens=CALL_TOKENS,
        temperature=0,
    )
    [ct] = [o for o in custom.output if o.type == "custom_tool_call"]
    assert ct.name == "shout" and isinstance(ct.input, str) and ct.call_id.startswith("call_")
    done = client.responses.create(
        model=model_name,
        previous_response_id=custom.id,
        input=[{"type": "custom_tool_call_output", "call_id": ct.call_id, "output": "HELLO"}],
        max_output_tokens=TOKENS,
    )
    assert done.status in ("completed", "incomplete") and any(o.type == "message" for o in done.output)

    shell = client.responses.create(
        model=model_name,
        input="List the files.",
        tools=tools,
        tool_choice={"type": "shell"},
        max_output_tokens=CALL_TOKENS,
        temperature=0,
    )
    [sh] = [o for o in shell.output if o.type == "shell_call"]
    assert isinstance(sh.action.commands, list)


def test_conversations_get_conv_ids_and_open_as_threads(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[{"role": "user", "content": "hi"}])
    assert conv.id.startswith("conv_")
    assert client.beta.threads.retrieve(conv.id).id == conv.id


def test_every_request_field_the_sdk_knows_is_accepted(client: openai.OpenAI, model_name: str) -> None:
    resp = client.responses.create(
        model=model_name,
        input="Hi",
        max_output_tokens=TOKENS,
        include=["reasoning.encrypted_content", "message.output_text.logprobs"],
        prompt_cache_key="k1",
        prompt_cache_retention="24h",
        safety_identifier="u1",
        service_tier="auto",
        max_tool_calls=2,
        top_logprobs=0,
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "text"}, "verbosity": "low"},
        stream_options=None,
        extra_body={"client_metadata": {"session": "s"}, "context_management": [{"type": "compaction"}]},
    )
    assert resp.status in ("completed", "incomplete"), resp.error
    assert resp.reasoning is not None and resp.reasoning.summary == "auto"
    assert resp.text.verbosity == "low" and resp.max_tool_calls == 2 and resp.prompt_cache_key == "k1"
    assert json.loads(resp.model_dump_json())["service_tier"] == "default"


async def test_max_tool_calls_stops_offering_tools(
    client: openai.OpenAI, model_name: str, stack: StackHandle
) -> None:
    """Once a response's run made `max_tool_calls` calls, its next turn offers the model no tool:
    the turn's context as the generate activity loads it from Postgres (activities/prompt.py)."""
    first = _forced_weather_call(client, model_name, max_tool_calls=1)
    assert first.max_tool_calls == 1 and [o.type for o in first.output] == ["function_call"]
    pool = await open_pool(stack.database_url, max_size=2)
    try:
        async with pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT r.data FROM runs r JOIN responses p ON p.run_id = r.id WHERE p.id = %s",
                    (first.id,),
                )
            ).fetchone()
        assert row is not None
        run = row["data"]
        limited = await load_turn_context(pool, run, "", 1, 8192)
        unlimited = await load_turn_context(
            pool, {k: v for k, v in run.items() if k != "_max_tool_calls"}, "", 1, 8192
        )
    finally:
        await pool.close()
    assert limited.tool_choice == "none" and unlimited.tool_choice == "auto"
