"""Issue 15: POST /v1/responses/input_tokens through the official SDK
(`client.responses.input_tokens.count`). The count is what a response with the same request
starts from: a response made right after reports the same `usage.input_tokens` (its first turn's
prompt), with instructions, tools, system items and a previous response in play. The input stays
out of Temporal's history (a row id travels), and nothing of the request is left behind."""

from __future__ import annotations

import asyncio

import openai
import psycopg
import pytest

from tests.conftest import REMOTE_MODEL
from tests.stackutil import StackHandle
from tests.vllm_server import VllmServer

pytestmark = pytest.mark.timeout(300)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _count(client: openai.OpenAI, **request) -> int:  # type: ignore[no-untyped-def]
    counted = client.responses.input_tokens.count(**request)
    assert counted.object == "response.input_tokens"
    return counted.input_tokens


def _used(client: openai.OpenAI, **request) -> int:  # type: ignore[no-untyped-def]
    resp = client.responses.create(**request, temperature=0, max_output_tokens=16)
    assert resp.usage is not None, resp
    return resp.usage.input_tokens


def test_count_equals_what_the_response_then_uses(client: openai.OpenAI, model_name: str) -> None:
    plain = {"model": model_name, "input": "Tell me a joke."}
    n_plain = _count(client, **plain)
    assert n_plain == _used(client, **plain)

    # Instructions, a developer item (joins them) and a function tool all reach the prompt.
    richer = {
        "model": model_name,
        "instructions": "You are terse.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
    }
    n_richer = _count(client, **richer)
    assert n_richer > _count(client, **{**richer, "input": richer["input"][1:]})  # the developer item
    assert n_richer == _used(client, **richer)

    # A tool the model may call is rendered into the prompt as well.
    with_tool = {**richer, "tool_choice": "auto"}
    n_with_tool = _count(client, **with_tool)
    assert n_with_tool > n_richer
    assert n_with_tool == _used(client, **with_tool)

    # Continuing a response: the conversation so far is counted too.
    first = client.responses.create(
        model=model_name, input="My name is Ada.", temperature=0, max_output_tokens=16
    )
    follow = {"model": model_name, "previous_response_id": first.id, "input": "What is my name?"}
    n_follow = _count(client, **follow)
    alone = _count(client, model=model_name, input="What is my name?")
    assert n_follow > alone
    assert n_follow == _used(client, **follow)


def test_count_on_a_conversation_and_with_function_items(client: openai.OpenAI, model_name: str) -> None:
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Remember: 42."}]
    )
    n_conv = _count(client, model=model_name, conversation=conv.id, input="What number?")
    assert n_conv > _count(client, model=model_name, input="What number?")
    # A replayed call and its output are read by the model, so they count.
    items = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Oslo"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c": -3}'},
    ]
    assert _count(client, model=model_name, input=items, tools=[WEATHER_TOOL]) > _count(
        client, model=model_name, input=items[:1], tools=[WEATHER_TOOL]
    )


def test_bad_count_requests_are_clear_errors(client: openai.OpenAI, model_name: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.input_tokens.count(model="no-such-model", input="hi")
    assert e.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(model=model_name, previous_response_id="resp_missing", input="hi")
    with pytest.raises(openai.BadRequestError):
        client.responses.input_tokens.count(input="hi")  # no model, nothing to take it from
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.input_tokens.count(model=model_name, input=[{"type": "bogus"}])
    assert e.value.body["param"] == "input[0].type"  # type: ignore[index]


def test_input_stays_out_of_history_and_nothing_is_left(
    client: openai.OpenAI, model_name: str, stack: StackHandle
) -> None:
    big = "lorem ipsum dolor sit amet " * 8000  # 216 KB of input
    n = _count(client, model=model_name, input=big)
    assert n > 1000  # counted (and truncated to the context, as a run would)

    async def histories() -> list[int]:
        temporal = await stack.temporal()
        sizes = []
        async for wf in temporal.list_workflows("WorkflowType = 'CountInputTokensWorkflow'"):
            history = await temporal.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
            sizes.append(len(history.to_json()))
        return sizes

    sizes = asyncio.run(histories())
    assert sizes, "no CountInputTokensWorkflow found"
    assert max(sizes) < 20_000, sizes  # ids and a count, not the 216 KB input
    with psycopg.connect(stack.database_url) as conn:
        left = conn.execute("SELECT count(*) FROM input_token_counts").fetchone()
    assert left == (0,)


def test_reasoning_effort_becomes_the_runs(client: openai.OpenAI, model_name: str) -> None:
    """`reasoning.effort` of a response is its run's `reasoning_effort` (what chat templates and
    remote engines receive), and the response echoes it."""
    conv = client.conversations.create()
    resp = client.responses.create(
        model=model_name, conversation=conv.id, input="Hi.", reasoning={"effort": "low"}, max_output_tokens=16
    )
    assert resp.reasoning is not None and resp.reasoning.effort == "low"
    [run] = client.beta.threads.runs.list(thread_id=conv.id).data  # a conversation is a thread
    assert run.reasoning_effort == "low"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=model_name, input="Hi.", reasoning={"effort": "extreme"})  # type: ignore[typeddict-item]
    assert e.value.body["param"] == "reasoning.effort"  # type: ignore[index]


def test_two_responses_continuing_one_previous_response_fork(client: openai.OpenAI, model_name: str) -> None:
    """previous_response_id continues the conversation as it stood at that response: a second
    response continuing r1 (after r2 already did) reads nothing of r2's branch. The counts show it:
    r3's prompt is exactly what continuing r1 counted before r2 existed."""
    r1 = client.responses.create(
        model=model_name, input="My name is Ada.", temperature=0, max_output_tokens=16
    )
    question = {"model": model_name, "previous_response_id": r1.id, "input": "What is my name?"}
    before_r2 = _count(client, **question)
    r2 = client.responses.create(
        model=model_name,
        previous_response_id=r1.id,
        input="I live in a lighthouse on a small island, far out at sea.",
        temperature=0,
        max_output_tokens=16,
    )
    assert _count(client, **question) == before_r2  # r2's branch is not r1's conversation
    assert _used(client, **question) == before_r2  # r3, continuing r1, reads what r1 saw
    on_r2 = {"model": model_name, "previous_response_id": r2.id, "input": "What is my name?"}
    n_on_r2 = _count(client, **on_r2)
    assert n_on_r2 > before_r2  # r2's branch holds its own turn as well
    assert _used(client, **on_r2) == n_on_r2


def test_remote_model_counts_through_its_engine(client: openai.OpenAI, vllm: VllmServer) -> None:
    """A model on vLLM is counted by vLLM's /tokenize on the Chat Completions body a turn sends:
    the count equals the prompt tokens vLLM then reports for the response, tools and reasoning
    effort included (its test chat template renders both)."""
    request = {
        "model": REMOTE_MODEL,
        "instructions": "Be brief.",
        "input": "What is the weather in Paris?",
        "tools": [WEATHER_TOOL],
        "reasoning": {"effort": "high"},
    }
    n = _count(client, **request)
    assert n > _count(client, model=REMOTE_MODEL, input="What is the weather in Paris?")
    assert n == _used(client, **request)
