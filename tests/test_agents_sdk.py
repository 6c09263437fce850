"""Issue 25: the OpenAI Agents SDK (`openai-agents`, pinned in pyproject's dev extras) runs an
agent with a function tool against the session stack, unchanged, through the Responses API.

`OpenAIResponsesModel` in its default mode is stateless: each model call re-sends the whole
history (the user message, the model's `function_call`, the SDK's `function_call_output`) with no
`previous_response_id`. The bundled SmolLM2 never calls a tool by itself, so the agent forces
the first call (`tool_choice="required"`); the SDK resets tool_choice once the tool has run
(`reset_tool_choice`), so the second call answers in text. Both `Runner.run` and
`Runner.run_streamed` are checked; the request bodies are captured on the client side (an httpx
event hook), so the test sees exactly what the SDK sent."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.stackutil import StackHandle

try:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
except ImportError:  # pragma: no cover - the dev extras install it
    from tests.requires import missing

    missing("openai-agents is not installed (pip install -e '.[dev]')")

pytestmark = pytest.mark.timeout(300)

WEATHER = "Sunny, 21 C (from the test tool)"


class Recorder:
    """The SDK's HTTP client with an event hook: keeps every JSON body POSTed to /responses."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.http = httpx.AsyncClient(timeout=120, event_hooks={"request": [self._keep]})

    async def _keep(self, request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/responses"):
            self.bodies.append(json.loads(request.content))


def make_agent(
    stack: StackHandle, api_key: str, model_name: str, rec: Recorder, executed: list[str]
) -> Agent:
    set_tracing_disabled(True)  # no trace export: the run stays offline

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        executed.append(city)  # the SDK parsed the model's JSON arguments into this call
        return WEATHER

    client = openai.AsyncOpenAI(base_url=stack.base_url, api_key=api_key, max_retries=0, http_client=rec.http)
    return Agent(
        name="weather",
        instructions="Answer questions about the weather. Be brief.",
        model=OpenAIResponsesModel(model=model_name, openai_client=client),
        tools=[get_weather],
        model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=32),
    )


def check_tool_round_trip(result: Any, rec: Recorder, executed: list[str], client: openai.OpenAI) -> None:
    # The tool ran once, with a city the SDK parsed; the run ended on text, with no API error.
    assert len(executed) == 1 and isinstance(executed[0], str) and executed[0], executed
    assert isinstance(result.final_output, str) and result.final_output.strip(), result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"], kinds
    call = result.new_items[0].raw_item
    assert call.type == "function_call" and call.name == "get_weather", call
    assert result.new_items[1].output == WEATHER
    assert len(result.raw_responses) == 2

    # Two model calls, stateless: the second re-sent the whole history, the call and its output.
    assert len(rec.bodies) == 2, [b.get("input") for b in rec.bodies]
    first, second = rec.bodies
    assert first["tool_choice"] == "required" and "previous_response_id" not in second
    items = [i for i in second["input"] if isinstance(i, dict)]
    kinds = [i.get("type", "message") for i in items]
    assert "function_call" in kinds and "function_call_output" in kinds, kinds
    sent_call = next(i for i in items if i.get("type") == "function_call")
    sent_output = next(i for i in items if i.get("type") == "function_call_output")
    assert sent_call["call_id"] == sent_output["call_id"] == call.call_id
    assert sent_output["output"] == WEATHER

    # The server answered that request: its stored response ends on the same final text.
    second_id = result.raw_responses[1].response_id
    assert second_id and second_id.startswith("resp_"), second_id
    stored = client.responses.retrieve(second_id)
    assert stored.status in ("completed", "incomplete") and stored.output_text == result.final_output


async def test_agents_sdk_run_with_function_tool(
    stack: StackHandle, api_key: str, model_name: str, client: openai.OpenAI
) -> None:
    rec, executed = Recorder(), []
    agent = make_agent(stack, api_key, model_name, rec, executed)
    result = await Runner.run(agent, "What is the weather in Paris?", max_turns=3)
    check_tool_round_trip(result, rec, executed, client)


async def test_agents_sdk_run_streamed_with_function_tool(
    stack: StackHandle, api_key: str, model_name: str, client: openai.OpenAI
) -> None:
    rec, executed = Recorder(), []
    agent = make_agent(stack, api_key, model_name, rec, executed)
    result = Runner.run_streamed(agent, "What is the weather in Paris?", max_turns=3)
    names, raw_types = [], set()
    async for event in result.stream_events():  # raises here on an API error
        if event.type == "run_item_stream_event":
            names.append(event.name)
        elif event.type == "raw_response_event":
            raw_types.add(event.data.type)
    assert names == ["tool_called", "tool_output", "message_output_created"], names
    assert {"response.created", "response.output_text.delta"} <= raw_types, raw_types
    assert raw_types & {"response.completed", "response.incomplete"}, raw_types  # 32 tokens may cut it
    assert all(b.get("stream") is True for b in rec.bodies), rec.bodies
    check_tool_round_trip(result, rec, executed, client)
