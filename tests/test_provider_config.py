"""The remote-provider configuration and request building, without a server: what a bad
`ASSISTANTS_MODEL_PROVIDERS` does, and what a model without a capability refuses."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError

from activities.remote_turn import chat_body
from assistants.model_providers import ProviderConfigError, parse_providers
from assistants.payloads import ChatMessage, GenerateInput
from assistants.settings import Settings

FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def _inp(**kw: object) -> GenerateInput:
    base: dict[str, object] = dict(
        run_id="run_1", project_id="p", thread_id="t", assistant_id="a", turn=0, model="m",
        messages=[ChatMessage(role="user", content="hi")], message_id="msg", step_id="step",
        temperature=0.0, top_p=1.0, max_new_tokens=64, max_prompt_tokens=None,
    )  # fmt: skip
    base.update(kw)
    return GenerateInput(**base)  # type: ignore[arg-type]


def _model(**caps: object):  # type: ignore[no-untyped-def]
    spec = {
        "m": {"provider": "openai", "base_url": "http://x/v1", "capabilities": caps, "extra_body": {"k": 1}}
    }
    return parse_providers(json.dumps(spec))["m"]


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"m": {"provider": "nope", "base_url": "http://x"}}',
        '{"m": {"provider": "openai"}}',
        '{"m": {"provider": "openai", "base_url": "http://x", "capabilities": {"colour": true}}}',
        '{"m": {"provider": "openai", "base_url": "http://x", "extra_body": [1]}}',
    ],
)
def test_bad_provider_config_stops_the_process(raw: str) -> None:
    with pytest.raises(ProviderConfigError):
        parse_providers(raw)
    with pytest.raises(ValueError):
        Settings(model_providers=raw)


def test_models_list_both_kinds() -> None:
    s = Settings(model_providers='{"remote-a": {"provider": "openai", "base_url": "http://x/v1"}}')
    assert s.model_names() == [s.default_model, "remote-a"]
    assert s.remote_models()["remote-a"].model == "remote-a"  # upstream name defaults to the id


def test_request_carries_tools_choice_format_and_seed() -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    body = chat_body(_inp(tools=[FN], tool_choice={"type": "code_interpreter"}, response_format=rf), _model())
    assert body["tools"][0]["function"]["name"] == "f"
    assert body["tool_choice"]["type"] == "function"  # a built-in choice names its function
    assert body["response_format"] == rf and body["temperature"] == 0.0 and isinstance(body["seed"], int)
    again = chat_body(
        _inp(tools=[FN], tool_choice={"type": "code_interpreter"}, response_format=rf), _model()
    )
    assert again["seed"] == body["seed"]  # a retried turn asks for the same sample


@pytest.mark.parametrize(
    ("caps", "kw"),
    [
        ({"tools": False}, {"tools": [FN]}),
        ({"json_schema": False}, {"response_format": {"type": "json_object"}}),
    ],
)
def test_missing_capability_is_a_clear_non_retryable_error(caps: dict, kw: dict) -> None:
    with pytest.raises(ApplicationError) as err:
        chat_body(_inp(**kw), _model(**caps))
    assert err.value.non_retryable and "does not support" in str(err.value)
    assert "tools" not in chat_body(_inp(tools=[FN], tool_choice="none"), _model(tools=False))
