"""What the generate activity writes while it generates a turn: the turn's message and step rows
(created on first use, with derived ids), and their deltas (coalesced per flush interval) in the
run event log (`run_events`, through `append_events`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

from psycopg.types.json import Jsonb

from activities.tool_call_objects import tool_call_object
from assistants.db.pool import Conn as DbConn
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_events, insert_message, insert_step, message_row, step_row
from assistants.ids import derived_id
from assistants.payloads import GenerateInput, ToolCall

FLUSH_EVERY_S = 0.05


def _run_of(inp: GenerateInput) -> dict[str, Any]:
    return {"id": inp.run_id, "thread_id": inp.thread_id, "assistant_id": inp.assistant_id}


class _Coalescer:
    """Collects text pushed from the engine thread; hands it out in flush-sized pieces. The first
    piece goes out at once (time to first token), later ones gather for up to FLUSH_EVERY_S, and
    closing flushes at once (the turn's end is not held back by a pending interval)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()

    def push(self, piece: str) -> None:  # engine thread
        if piece:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, piece)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._close)

    def _close(self) -> None:
        self.queue.put_nowait(None)
        self._closing.set()

    async def pieces(self):  # type: ignore[no-untyped-def]
        done, first = False, True
        while not done:
            item = await self.queue.get()
            chunks = [] if item is None else [item]
            done = item is None
            if not done and not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), FLUSH_EVERY_S)
            first = False
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    done = True
                else:
                    chunks.append(item)
            if chunks:
                yield "".join(chunks)


class MessageStream(_Coalescer):
    def __init__(self, pool: DbPool, inp: GenerateInput, attempt: int) -> None:
        super().__init__()
        self.pool, self.inp, self.attempt = pool, inp, attempt
        self.created = False
        self.emitted = ""

    @staticmethod
    async def discard_earlier_attempts(pool: DbPool, inp: GenerateInput, attempt: int) -> None:
        # A crashed attempt may have streamed part of its output (its message, or a tool call in
        # the turn's first step or in the step that follows its text); mark it so readers skip it.
        tools_step = derived_id("step", inp.run_id, inp.turn, "tools")
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE run_events SET discarded = true WHERE run_id = %s AND attempt < %s"
                " AND event IN ('thread.message.delta', 'thread.run.step.delta') AND data->>'id' IN (%s, %s, %s)",
                (inp.run_id, attempt, inp.message_id, inp.step_id, tools_step),
            )

    async def ensure_created(self) -> None:
        if self.created:
            return
        inp = self.inp
        msg = message_row(inp.message_id, _run_of(inp))
        step = step_row(
            inp.step_id,
            _run_of(inp),
            {"type": "message_creation", "message_creation": {"message_id": inp.message_id}},
        )
        async with self.pool.connection() as conn, conn.transaction():
            events: list[tuple[str, dict[str, Any]]] = []
            if await insert_step(conn, inp.project_id, step):
                events += [("thread.run.step.created", step), ("thread.run.step.in_progress", step)]
            if await insert_message(conn, inp.project_id, msg):
                events += [("thread.message.created", msg), ("thread.message.in_progress", msg)]
            await append_events(conn, inp.run_id, events, self.attempt)
        self.created = True

    async def write_text(self, text: str) -> None:
        await self.ensure_created()
        delta = {
            "id": self.inp.message_id,
            "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]},
        }
        async with self.pool.connection() as conn:
            await append_events(conn, self.inp.run_id, [("thread.message.delta", delta)], self.attempt)
        self.emitted += text

    async def pump(self) -> None:
        async for text in self.pieces():
            await self.write_text(text)


class PartialString:
    """The value of one string field of a JSON object that arrives in pieces, decoded as far as
    it can be: `feed` returns the newly decoded characters (an escape cut in two waits)."""

    def __init__(self, key: str) -> None:
        self.raw = ""
        self.key = f'"{key}"'
        self.start: int | None = None  # index in raw just after the value's opening quote
        self.pos = 0  # next raw index to decode
        self.done = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.start is None:
            k = self.raw.find(self.key)
            if k < 0:
                return ""
            rest = self.raw[k + len(self.key) :].lstrip()
            if not rest.startswith(":"):
                return ""
            value = rest[1:].lstrip()
            if not value.startswith('"'):
                return ""
            self.start = len(self.raw) - len(value) + 1
            self.pos = self.start
        out: list[str] = []
        raw = self.raw
        while not self.done and self.pos < len(raw):
            c = raw[self.pos]
            if c == '"':
                self.done = True
            elif c != "\\":
                out.append(c)
                self.pos += 1
                continue
            else:
                end = self.pos + (6 if raw[self.pos + 1 : self.pos + 2] == "u" else 2)
                if end > len(raw):
                    break  # the escape is not complete yet
                try:
                    out.append(json.loads(f'"{raw[self.pos : end]}"'))
                except ValueError:
                    out.append(raw[self.pos : end])
                self.pos = end
        return "".join(out)


class ToolStepStream(_Coalescer):
    """A tool_calls step: created when the call starts, argument deltas as they are generated."""

    def __init__(self, pool: DbPool, inp: GenerateInput, attempt: int, step_id: str) -> None:
        super().__init__()
        self.pool, self.inp, self.attempt, self.step_id = pool, inp, attempt, step_id
        self.call: ToolCall | None = None
        self._pump: asyncio.Task[None] | None = None

    def _step(self, calls: list[ToolCall]) -> dict[str, Any]:
        details = {"type": "tool_calls", "tool_calls": [tool_call_object(c, in_step=True) for c in calls]}
        return step_row(self.step_id, _run_of(self.inp), details)

    async def start(self, call: ToolCall) -> None:
        self.call = call
        step = self._step([call])
        async with self.pool.connection() as conn, conn.transaction():
            await self._create(conn, step)
            # The call's first delta (its id, type, name, no input yet), as OpenAI sends: the SDK
            # reports it as `on_tool_call_created` and every later piece as `on_tool_call_delta`.
            await append_events(conn, self.inp.run_id, [self._delta(call, "")], self.attempt)
        self._pump = asyncio.create_task(self._write_deltas())

    def _delta(self, call: ToolCall, piece: str) -> tuple[str, dict[str, Any]]:
        if call.type == "code_interpreter":
            item = {"id": call.id, "type": call.type, "code_interpreter": {"input": piece, "outputs": []}}
        else:
            item = tool_call_object(dataclasses.replace(call, arguments=piece), in_step=True)
        return self._delta_of(item, 0)

    def _delta_of(self, item: dict[str, Any], index: int) -> tuple[str, dict[str, Any]]:
        delta = {
            "id": self.step_id,
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **item}]}},
        }
        return "thread.run.step.delta", delta

    async def append_calls(self, calls: list[ToolCall], first_index: int) -> None:
        """Calls after the streamed one, each in one delta (whole), so that a client's snapshot of
        the step holds every call the step stores."""
        events = [
            self._delta_of(tool_call_object(c, in_step=True), first_index + i) for i, c in enumerate(calls)
        ]
        if events:
            async with self.pool.connection() as conn:
                await append_events(conn, self.inp.run_id, events, self.attempt)

    async def _create(self, conn: DbConn, step: dict[str, Any]) -> None:
        """Insert the step once (retries find it there) and announce it only when it is new."""
        if await insert_step(conn, self.inp.project_id, step):
            await append_events(
                conn,
                self.inp.run_id,
                [("thread.run.step.created", step), ("thread.run.step.in_progress", step)],
                self.attempt,
            )

    async def _write_deltas(self) -> None:
        call = self.call
        assert call is not None
        code = PartialString("code") if call.type == "code_interpreter" else None
        async for text in self.pieces():
            if code is not None:  # the code as the model writes it, out of its JSON arguments
                text = code.feed(text)
            elif call.type != "function":
                continue  # file_search shows its query once complete
            if text:
                async with self.pool.connection() as conn:
                    await append_events(conn, self.inp.run_id, [self._delta(call, text)], self.attempt)

    async def flush(self) -> None:
        if self._pump is not None:
            self.close()
            await self._pump
            self._pump = None

    async def write_calls(self, calls: list[ToolCall]) -> None:
        """Store the final calls on the step (created now if it was not streamed)."""
        step = self._step(calls)
        async with self.pool.connection() as conn, conn.transaction():
            await self._create(conn, step)
            await conn.execute(
                "UPDATE run_steps SET data = jsonb_set(data, '{step_details}', %s) WHERE id = %s",
                (Jsonb(step["step_details"]), self.step_id),
            )
