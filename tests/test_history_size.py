"""Workflow history carries ids, never user data: a run's history stays under a fixed bound
whatever the thread's size or the tool outputs' size (real stack, official SDK).

Temporal refuses payloads over 2 MiB; before history-by-reference, a thread of a few MB put its
text into history twice per turn and wedged every later run on that thread."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai

from tests.stackutil import StackHandle

HISTORY_BOUND_BYTES = 64 * 1024
MESSAGE_CHARS = 256_000  # OpenAI's limit per message
BIG_MESSAGES = 80  # 80 x 256k characters: a thread of about 20 MB
OUTPUT_CHARS = 512_000  # the largest tool output the API accepts (as OpenAI)


def _history_bytes(stack: StackHandle, run_id: str) -> int:
    ns = httpx.get(stack.api_url + "/health").json()["temporal_namespace"]

    async def fetch() -> int:
        c = await stack.temporal(ns)
        return len((await c.get_workflow_handle(run_id).fetch_history()).to_json())

    return asyncio.run(fetch())


def test_thread_of_tens_of_mb_completes_with_a_small_history(
    client: openai.OpenAI, stack: StackHandle, assistant
) -> None:  # type: ignore[no-untyped-def]
    thread = client.beta.threads.create()
    filler = ("The quick brown fox jumps over the lazy dog. " * (MESSAGE_CHARS // 45 + 1))[:MESSAGE_CHARS]
    for n in range(BIG_MESSAGES):
        client.beta.threads.messages.create(thread.id, role="user", content=f"{n} {filler}"[:MESSAGE_CHARS])
    client.beta.threads.messages.create(thread.id, role="user", content="Say hello.")
    sizes = []
    for _ in range(2):  # the conversation stays alive: a second run on the same thread works too
        started = time.monotonic()
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=300
        )
        elapsed = time.monotonic() - started
        assert run.status == "completed", (run.status, run.last_error, run.incomplete_details)
        assert elapsed < 120, f"a run on a 20 MB thread took {elapsed:.0f}s"
        answers = client.beta.threads.messages.list(thread.id, run_id=run.id).data
        assert len(answers) == 1 and answers[0].content[0].text.value.strip()
        sizes.append(_history_bytes(stack, run.id))
    assert max(sizes) < HISTORY_BOUND_BYTES, sizes


def test_tool_output_of_512_kb_stays_out_of_history(
    client: openai.OpenAI, stack: StackHandle, model_name: str
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "fetch_report",
            "description": "Fetch the quarterly report.",
            "parameters": {
                "type": "object",
                "properties": {"quarter": {"type": "string"}},
                "required": ["quarter"],
            },
        },
    }
    asst = client.beta.assistants.create(model=model_name, tools=[tool], temperature=0)  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Get the Q3 report."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=asst.id,
        tool_choice={"type": "function", "function": {"name": "fetch_report"}},
        poll_interval_ms=300,
    )
    assert run.status == "requires_action", (run.status, run.last_error)
    [call] = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    output = ("revenue grew; " * (OUTPUT_CHARS // 14 + 1))[:OUTPUT_CHARS]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": output}]
    )
    assert run.status == "completed", (run.status, run.last_error, run.incomplete_details)
    # The output is recorded on the step whole, as the client sent it.
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    recorded = [
        c.function.output  # type: ignore[union-attr]
        for s in steps
        if s.step_details.type == "tool_calls"
        for c in s.step_details.tool_calls  # type: ignore[union-attr]
    ]
    assert recorded == [output]
    assert _history_bytes(stack, run.id) < HISTORY_BOUND_BYTES
