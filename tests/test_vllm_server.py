"""The real vLLM CPU server the provider tests run against (tests/vllm_server.py) serves what the
remote provider relies on, checked with the official SDK: plain and streamed chat completions
(usage in the stream), a named and a `required` tool_choice whose arguments match the schema,
`auto` accepted, and `response_format` json_schema. The session's one server (tests/conftest.py), ~2.5 min
to start on 2 cores."""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema
import openai
import pytest

from tests.conftest import REMOTE_MODEL
from tests.requires import missing
from tests.vllm_server import VllmServer, available

if not available():
    missing(".vllm-venv is missing: run scripts/setup_vllm.sh (make setup does)")

pytestmark = pytest.mark.timeout(900)

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": WEATHER,
        },
    }
]
ASK_WEATHER: list[Any] = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


@pytest.fixture(scope="module")
def server(vllm: VllmServer) -> VllmServer:
    """The session's server (tests/conftest.py), shared with tests/test_providers.py: one startup."""
    return vllm


@pytest.fixture(scope="module")
def sdk(server: VllmServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def test_lists_the_served_model(sdk: openai.OpenAI) -> None:
    assert [m.id for m in sdk.models.list()] == [REMOTE_MODEL]


def test_plain_chat_completion(sdk: openai.OpenAI) -> None:
    done = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        temperature=0,
    )
    choice = done.choices[0]
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert done.usage is not None and done.usage.prompt_tokens > 0
    assert 0 < done.usage.completion_tokens <= 16


def test_streamed_chat_completion_ends_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, t0, first = "", None, time.perf_counter(), None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - t0
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            assert not chunk.choices  # the usage chunk comes last, on its own
            usage = chunk.usage
    assert text and first is not None
    assert usage is not None and 0 < usage.completion_tokens <= 24 and usage.prompt_tokens > 0


def test_named_tool_choice_forces_a_call_matching_the_schema(sdk: openai.OpenAI) -> None:
    done = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=128,
        temperature=0,
    )
    calls = done.choices[0].message.tool_calls
    assert calls and len(calls) == 1
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER)  # type: ignore[union-attr]


def test_required_tool_choice_forces_a_call(sdk: openai.OpenAI) -> None:
    done = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=128,
        temperature=0,
    )
    calls = done.choices[0].message.tool_calls
    assert calls and all(c.function.name == "get_weather" for c in calls)  # type: ignore[union-attr]
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), WEATHER)  # type: ignore[union-attr]


def test_auto_tool_choice_is_served(sdk: openai.OpenAI) -> None:
    """`auto` needs --enable-auto-tool-choice and a parser; the 135M model may answer in text or
    call the tool, and either is a well-formed reply."""
    done = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice="auto",
        max_tokens=64,
        temperature=0,
    )
    message = done.choices[0].message
    assert message.content or message.tool_calls
    for call in message.tool_calls or []:
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        json.loads(call.function.arguments)  # type: ignore[union-attr]


def test_response_format_json_schema(sdk: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "capital": {"type": "string", "enum": ["Paris", "Lyon", "Marseille"]},
            "population_millions": {"type": "integer", "minimum": 0, "maximum": 100},
        },
        "required": ["capital", "population_millions"],
        "additionalProperties": False,
    }
    done = sdk.chat.completions.create(
        model=REMOTE_MODEL,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
        max_tokens=128,
        temperature=0,
    )
    assert done.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(done.choices[0].message.content or ""), schema)
