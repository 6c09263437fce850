"""Issue 15: response objects carry every field the Open Responses schema requires
(`ResponseResource` in openresponses/openresponses), in a plain answer and in the streamed
final event, read raw (the SDK's models would accept a missing field)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.timeout(300)

# field -> accepted types, as the schema types them
REQUIRED: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "object": (str,),
    "created_at": (int,),
    "completed_at": (int, type(None)),
    "status": (str,),
    "incomplete_details": (dict, type(None)),
    "model": (str,),
    "previous_response_id": (str, type(None)),
    "instructions": (str, type(None)),
    "output": (list,),
    "error": (dict, type(None)),
    "tools": (list,),
    "tool_choice": (str, dict),
    "truncation": (str,),
    "parallel_tool_calls": (bool,),
    "text": (dict,),
    "top_p": (float, int),
    "presence_penalty": (float, int),
    "frequency_penalty": (float, int),
    "top_logprobs": (int,),
    "temperature": (float, int),
    "reasoning": (dict, type(None)),
    "usage": (dict, type(None)),
    "max_output_tokens": (int, type(None)),
    "max_tool_calls": (int, type(None)),
    "store": (bool,),
    "background": (bool,),
    "service_tier": (str,),
    "metadata": (dict,),
    "safety_identifier": (str, type(None)),
    "prompt_cache_key": (str, type(None)),
}


def _check(resp: dict) -> None:
    wrong = {k: resp.get(k, "<missing>") for k, t in REQUIRED.items() if not isinstance(resp.get(k, ...), t)}
    assert wrong == {}, wrong


def test_response_objects_have_the_open_responses_required_fields(
    client: openai.OpenAI, api_key: str, model_name: str
) -> None:
    body = {
        "model": model_name,
        "input": [{"type": "message", "role": "user", "content": "Say hello."}],
        "max_output_tokens": 16,
        "safety_identifier": "user-1",
        "prompt_cache_key": "k1",
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=str(client.base_url), headers=headers, timeout=120) as http:
        plain = http.post("responses", json=body)
        assert plain.status_code == 200, plain.text
        _check(plain.json())
        assert plain.json()["safety_identifier"] == "user-1" and plain.json()["prompt_cache_key"] == "k1"
        _check(http.get(f"responses/{plain.json()['id']}").json())

        finals = []
        with http.stream("POST", "responses", json={**body, "stream": True}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    event = json.loads(line[6:])
                    if "response" in event:
                        finals.append(event["response"])
    assert len(finals) == 3  # created, in_progress, completed/incomplete
    for resp in finals:
        _check(resp)


def test_function_tools_are_echoed_with_every_function_tool_field(
    client: openai.OpenAI, api_key: str, model_name: str
) -> None:
    """The schema's FunctionTool requires `type`, `name`, `description`, `parameters` and `strict`
    (the last three nullable): a tool sent with only a name is echoed with all of them."""
    body = {
        "model": model_name,
        "input": "Say hello.",
        "max_output_tokens": 16,
        "tool_choice": "none",
        "tools": [{"type": "function", "name": "noop"}],
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=str(client.base_url), headers=headers, timeout=120) as http:
        resp = http.post("responses", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["tools"] == [
        {"type": "function", "name": "noop", "description": None, "parameters": None, "strict": None}
    ]
