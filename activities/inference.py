"""The generate activity: one model turn of a run, on the inference task queue.

The model is loaded once per worker process (ModelRegistry) and shared by every concurrent run
through the batching engine. Token deltas never enter workflow history: they are appended to the
run's event log in Postgres (and NOTIFYed) as they are generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from assistants.db.runlog import append_events, insert_message, insert_step, message_row, step_row
from assistants.io import ChatMessage, GenerateInput, GenerateOutput
from assistants.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
FLUSH_EVERY_S = 0.05
DEFAULT_MAX_NEW_TOKENS = 512


def _chat_dicts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = m.tool_calls
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


class _MessageStream:
    """Creates the run's message on the first token and appends coalesced deltas to the event log."""

    def __init__(self, pool: AsyncConnectionPool, inp: GenerateInput, attempt: int) -> None:
        self.pool, self.inp, self.attempt = pool, inp, attempt
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.created = False
        self.loop = asyncio.get_running_loop()

    def on_delta(self, text: str) -> None:  # called from the engine's decode thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, text)

    async def ensure_created(self) -> None:
        if self.created:
            return
        inp = self.inp
        run = {"id": inp.run_id, "thread_id": inp.thread_id, "assistant_id": inp.assistant_id}
        msg = message_row(inp.message_id, run)
        step = step_row(inp.step_id, run, {"type": "message_creation", "message_creation": {"message_id": inp.message_id}})
        async with self.pool.connection() as conn, conn.transaction():
            new_step = await insert_step(conn, inp.project_id, step)
            new_msg = await insert_message(conn, inp.project_id, msg)
            events: list[tuple[str, dict[str, Any]]] = []
            if new_step:
                events += [("thread.run.step.created", step), ("thread.run.step.in_progress", step)]
            if new_msg:
                events += [("thread.message.created", msg), ("thread.message.in_progress", msg)]
            await append_events(conn, inp.run_id, events, self.attempt)
        self.created = True

    async def pump(self) -> None:
        """Drain deltas until the None sentinel, writing one event per flush interval."""
        done = False
        while not done:
            first = await self.queue.get()
            chunks = [] if first is None else [first]
            done = first is None
            await asyncio.sleep(FLUSH_EVERY_S)
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    done = True
                else:
                    chunks.append(item)
            text = "".join(chunks)
            if text:
                await self.ensure_created()
                delta = {"id": self.inp.message_id, "object": "thread.message.delta",
                         "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]}}
                async with self.pool.connection() as conn:
                    await append_events(conn, self.inp.run_id, [("thread.message.delta", delta)], self.attempt)


class InferenceActivities:
    def __init__(self, registry: Any, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.registry = registry
        self.pool = pool
        self.settings = settings

    async def _discard_earlier_attempts(self, inp: GenerateInput, attempt: int) -> None:
        # A crashed attempt may have streamed part of the text; mark it so readers skip it.
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE run_events SET discarded = true WHERE run_id = %s AND attempt < %s AND event = 'thread.message.delta'"
                " AND data->>'id' = %s",
                (inp.run_id, attempt, inp.message_id),
            )

    def _fit_prompt(self, model: Any, inp: GenerateInput, max_new: int) -> list[int] | None:
        """Token ids of the prompt, trimmed per the truncation strategy; None if it cannot fit."""
        messages = _chat_dicts(inp.messages)
        limit = self.settings.max_context_tokens - max_new
        if inp.max_prompt_tokens is not None:
            limit = min(limit, inp.max_prompt_tokens)
        ids = model.encode_chat(messages)
        while len(ids) > limit and inp.truncation == "auto":
            # Drop the oldest non-system message, keeping at least the last one.
            droppable = [i for i, m in enumerate(messages) if m["role"] != "system"]
            if len(droppable) <= 1:
                break
            del messages[droppable[0]]
            ids = model.encode_chat(messages)
        return ids if len(ids) <= limit else None

    @activity.defn(name="generate")
    async def generate(self, inp: GenerateInput) -> GenerateOutput:
        if inp.model not in self.registry.names():
            raise ApplicationError(f"unknown model {inp.model!r}", type="ModelNotFound", non_retryable=True)
        model = await asyncio.to_thread(self.registry.get, inp.model)
        attempt = activity.info().attempt
        if attempt > 1:
            await self._discard_earlier_attempts(inp, attempt)
        max_new = min(inp.max_new_tokens or DEFAULT_MAX_NEW_TOKENS, self.settings.max_context_tokens // 2)
        prompt_ids = await asyncio.to_thread(self._fit_prompt, model, inp, max_new)
        if prompt_ids is None:
            return GenerateOutput(text="", prompt_tokens=0, completion_tokens=0, finish_reason="prompt_too_long")

        from activities.llm.engine import GenerationRequest

        request = GenerationRequest(
            prompt_ids=prompt_ids, max_new_tokens=max_new, temperature=inp.temperature, top_p=inp.top_p, seed=inp.seed
        )
        stream = _MessageStream(self.pool, inp, attempt)
        pump = asyncio.create_task(stream.pump())
        beat = asyncio.create_task(self._heartbeat())
        try:
            result = await model.engine.generate(request, stream.on_delta)
        finally:
            beat.cancel()
            stream.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await stream.ensure_created()
        return GenerateOutput(
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason,
            created_message=True,
        )

    async def _heartbeat(self) -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)
