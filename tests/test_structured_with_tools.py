"""Structured output on a run that also has tools (issue 14, item 3), through the official SDK on
the in-process model: the output is constrained to EITHER a schema-valid JSON answer OR a valid
tool call (activities/llm/grammar.answer_or_call_constraint), never free prose."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

pytestmark = pytest.mark.timeout(300)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_strict_json_schema_answer_on_an_assistant_with_tools(client: openai.OpenAI, model_name: str) -> None:
    a = client.beta.assistants.create(
        model=model_name,
        tools=[WEATHER],  # type: ignore[list-item]
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Invent a person: name and age."}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=a.id, max_completion_tokens=80, poll_interval_ms=300
    )
    if run.status == "requires_action":  # the other allowed shape: a valid call
        [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])  # type: ignore[index]
        return
    assert run.status == "completed", run.last_error or run.incomplete_details
    text = client.beta.threads.messages.list(thread.id, order="desc").data[0].content[0].text.value  # type: ignore[union-attr]
    jsonschema.validate(json.loads(text), PERSON)
