"""Requests several tests make the same way: a run / response that must use code_interpreter, and
a vector store holding one small document (the zorblat) for file_search."""

from __future__ import annotations

from typing import Any

import openai

CODE_QUESTION = "Use Python to compute 6 * 7."
ZORBLAT = b"# Zorblat\nThe zorblat is a purple fish that lives in Lake Quibble and eats moonweed at night.\n"


def forced_code_run(client: openai.OpenAI, model: str, max_completion_tokens: int = 120) -> Any:
    """An Assistants run whose first turn must call code_interpreter, polled to its end."""
    coder = client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}], temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": CODE_QUESTION}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=coder.id,
        poll_interval_ms=300,
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=max_completion_tokens,
    )


def code_response(model: str, **more: Any) -> dict[str, Any]:
    """responses.create / responses.stream arguments of a response that must run code."""
    return {
        "model": model,
        "input": CODE_QUESTION,
        "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
        "tool_choice": {"type": "code_interpreter"},
        "temperature": 0,
        "max_output_tokens": 120,
        **more,
    }


def zorblat_store(client: openai.OpenAI, name: str) -> Any:
    store = client.vector_stores.create(name=name)
    client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("zorblat.md", ZORBLAT))
    return store
