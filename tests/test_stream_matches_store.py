"""What a streaming client received equals what the thread stores, also when the run ends
mid-generation (cancelled here; failed after its last attempt in the chaos benchmark): the
message keeps the text its stream already delivered (real stack, official SDK)."""

from __future__ import annotations

from typing import Any

import openai
from openai import AssistantEventHandler
from typing_extensions import override


class _CancelAfterText(AssistantEventHandler):
    def __init__(self, client: openai.OpenAI, min_chars: int) -> None:
        super().__init__()
        self.client, self.min_chars = client, min_chars
        self.text = ""
        self.cancelled = False

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""
        if not self.cancelled and len(self.text) >= self.min_chars and self.current_run is not None:
            self.cancelled = True
            self.client.beta.threads.runs.cancel(self.current_run.id, thread_id=self.current_run.thread_id)


def test_run_cancelled_mid_stream_stores_what_was_streamed(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    )
    handler = _CancelAfterText(client, min_chars=20)
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler, max_completion_tokens=400
    ) as stream:
        stream.until_done()
    assert handler.cancelled, "the run ended before it streamed 20 characters"
    run = client.beta.threads.runs.list(thread.id).data[0]
    assert run.status == "cancelled", run.status
    [message] = [m for m in client.beta.threads.messages.list(thread.id).data if m.role == "assistant"]
    assert message.status == "incomplete"
    stored = message.content[0].text.value if message.content else ""  # type: ignore[union-attr]
    assert len(handler.text) >= 20
    assert stored == handler.text
