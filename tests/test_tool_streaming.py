"""Tool calls stream (issue 14, item 2), through the official SDK's streaming helpers against the
real stack: a code_interpreter call's input arrives in step deltas while the model writes it, and
its outputs arrive in a step delta when the sandbox returns, so `on_tool_call_delta` fires and
the snapshot the SDK accumulates equals the stored step."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.lib.streaming import AssistantEventHandler

pytestmark = pytest.mark.timeout(300)


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.created: list[Any] = []
        self.deltas: list[Any] = []
        self.done: list[Any] = []

    def on_tool_call_created(self, tool_call: Any) -> None:
        self.created.append(tool_call)

    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        self.deltas.append(delta)

    def on_tool_call_done(self, tool_call: Any) -> None:
        self.done.append(tool_call)


def test_code_interpreter_input_and_outputs_stream(client: openai.OpenAI, model_name: str) -> None:
    a = client.beta.assistants.create(model=model_name, tools=[{"type": "code_interpreter"}], temperature=0)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Use Python to compute 6 * 7."}]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=a.id,
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=120,
        event_handler=handler,
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error or run.incomplete_details
    ci = [d for d in handler.deltas if d.type == "code_interpreter"]
    inputs = [d.code_interpreter.input for d in ci if d.code_interpreter and d.code_interpreter.input]
    outputs = [
        o for d in ci if d.code_interpreter and d.code_interpreter.outputs for o in d.code_interpreter.outputs
    ]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    stored = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert handler.created and handler.created[0].type == "code_interpreter"
    assert len(inputs) >= 2 and "".join(inputs) == stored.code_interpreter.input  # streamed as written
    assert outputs and [o.type for o in outputs] == [o.type for o in stored.code_interpreter.outputs]
    assert handler.done and handler.done[0].code_interpreter.outputs  # the SDK's snapshot holds them
