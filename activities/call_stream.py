"""A function call the in-process model makes in `tool_choice: "auto"`, streamed as it is written.

The rule that keeps what a client streamed equal to what the run step stores:

- The turn is generated under a grammar (activities/llm/grammar.py `tool_calls_constraint`): text
  is free, but once the model writes `<tool_call>` the call must name one of the run's tools, in
  the format `{"name": ..., "arguments": ...}`, with arguments valid against that tool's schema.
  So the streamed call cannot be to an unknown function, and its arguments cannot fail to parse
  or validate: they are never regenerated, and the step stores them as the model wrote them.
- Only the turn's first call streams, from the moment `{"name": "<tool>", "arguments": {` is
  written: the step opens (the same step and call ids a whole write would use) and the arguments'
  raw text follows as `thread.run.step.delta`s. Calls after it (when `parallel_tool_calls`) are
  added to the step's stream whole, each in one delta, when the turn ends.
- A call to a function this run has already called does not stream: it may be a repeat, which
  is dropped (small models loop), and a dropped call cannot be taken back from a client. Such a
  turn's calls are written whole, as are the calls of models with a tool-aware chat template
  (their own call format is not constrained).
- An output that stops inside the arguments (the token budget) is continued under the schema
  from where it stopped, and the continuation streams too, so the stored arguments are the
  streamed text plus what follows it, never a rewrite.
- A retried attempt marks the earlier attempt's deltas discarded and streams the call again
  (turn_stream.MessageStream.discard_earlier_attempts; api/sse_view.py re-cuts them for a
  client that already holds part of them).
"""

from __future__ import annotations

import asyncio
from typing import Any

from activities.llm import toolcalls
from activities.turn_stream import ToolStepStream
from assistants.db.pool import Pool as DbPool
from assistants.ids import derived_id
from assistants.payloads import GenerateInput, ToolCall


class AutoCallStream:
    """Fed from the engine thread with the turn's markup; opens the call's step and pushes its
    arguments in the event loop."""

    def __init__(self, pool: DbPool, inp: GenerateInput, attempt: int, specs: list[dict[str, Any]]) -> None:
        self.pool, self.inp, self.attempt = pool, inp, attempt
        self.names = {s["function"]["name"] for s in specs}
        self.called = {c["function"]["name"] for m in inp.messages for c in m.tool_calls or []}
        self.reader = toolcalls.ArgumentsReader()
        self.loop = asyncio.get_running_loop()
        self.call: ToolCall | None = None
        self.step: ToolStepStream | None = None
        self._starting: asyncio.Task[None] | None = None
        self._declined = False

    def feed(self, markup: toolcalls.MarkupFilter) -> None:  # engine thread
        if self._declined:
            return
        piece = self.reader.feed(markup.call_text)
        name = self.reader.name
        if name is None:
            return
        if self.call is None:
            if name not in self.names or name in self.called:
                self._declined = True
                return
            inp = self.inp
            # Text streamed before the call holds the turn's first step (see _free_turn).
            step_id = derived_id("step", inp.run_id, inp.turn, "tools") if markup.emitted else inp.step_id
            self.call = ToolCall(
                id=derived_id("call", inp.run_id, inp.turn, 0),
                type=toolcalls.tool_type(name, inp.tools),
                name=name,
            )
            self.loop.call_soon_threadsafe(self._open, step_id)
        if piece:
            self.loop.call_soon_threadsafe(self._push, piece)

    def _open(self, step_id: str) -> None:
        assert self.call is not None
        self.step = ToolStepStream(self.pool, self.inp, self.attempt, step_id)
        self._starting = asyncio.create_task(self.step.start(self.call))

    def _push(self, piece: str) -> None:
        assert self.step is not None
        self.step.push(piece)

    async def opened(self) -> ToolStepStream | None:
        """Once generation is over: the streamed call's step (its start written), or None."""
        await asyncio.sleep(0)  # let the engine thread's last callbacks run
        if self._starting is not None:
            await self._starting
        return self.step
