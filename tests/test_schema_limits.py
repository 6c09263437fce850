"""User schemas cannot stall inference: over-limit schemas and catastrophic regexes are a 400 at
create time, through the real stack (the worker never compiles or runs them)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import jsonschema
import openai
import pytest

from activities.llm import grammar
from assistants.schemas import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH


def _function(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


def _deep(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def _create_error(client: openai.OpenAI, model_name: str, **fields: Any) -> str:
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model=model_name, **fields)
    assert err.value.status_code == 400
    return str(err.value.body)


def test_deep_function_schema_is_refused(client: openai.OpenAI, model_name: str) -> None:
    msg = _create_error(client, model_name, tools=_function(_deep(MAX_SCHEMA_DEPTH)))
    assert "deeper" in msg


def test_deep_response_format_schema_is_refused(client: openai.OpenAI, model_name: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": _deep(MAX_SCHEMA_DEPTH)}}
    # The response_format union reports its first member's error; the refusal is what matters.
    assert "response_format" in _create_error(client, model_name, response_format=fmt)


def test_huge_schema_is_refused(client: openai.OpenAI, model_name: str) -> None:
    props = {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(MAX_SCHEMA_BYTES // 200)}
    msg = _create_error(client, model_name, tools=_function({"type": "object", "properties": props}))
    assert "larger" in msg


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a|aa)*$", "^(\\w+\\s?)*$"])
def test_catastrophic_pattern_is_refused(client: openai.OpenAI, model_name: str, pattern: str) -> None:
    params = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
    assert "catastrophic" in _create_error(client, model_name, tools=_function(params))


def test_ordinary_schema_is_accepted(client: openai.OpenAI, model_name: str) -> None:
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "pattern": "^[A-Z][a-z]+$"}, "n": _deep(4)},
    }
    made = client.beta.assistants.create(model=model_name, tools=_function(params))  # type: ignore[arg-type]
    assert made.tools[0].type == "function"


def test_argument_validation_bounds_user_regexes() -> None:
    """Schemas stored before the caps still hold such patterns: matching them is time-limited."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    started = time.perf_counter()
    with pytest.raises(jsonschema.ValidationError):
        grammar.validate_arguments({"s": "a" * 64 + "!"}, schema)  # `re` would take longer than the universe
    assert time.perf_counter() - started < 2
    grammar.validate_arguments({"s": "aaa"}, schema)


async def test_schema_compiles_off_the_event_loop_with_a_time_limit() -> None:
    class SlowCompiler:
        def compile_json_schema(self, text: str, **_: object) -> object:
            assert threading.current_thread() is not threading.main_thread()
            time.sleep(1.0)
            return object()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    with pytest.raises(grammar.GrammarCompileTimeout):
        await grammar.json_schema_constraint_async(SlowCompiler(), {"type": "object"}, limit_s=0.5)  # type: ignore[arg-type]
    task.cancel()
    assert ticks >= 5  # the loop kept running while the schema compiled
