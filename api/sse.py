"""Server-sent events for runs: replay a run's event log from a cursor, then tail it.

Every event is `id: <run_events.seq>`, `event: <name>`, `data: <json>`; a stream ends after the
first terminal run event (or `thread.run.requires_action`) with `event: done` / `data: [DONE]`.
Deltas never pass through any API process's memory between requests: each stream reads
Postgres, so any replica can serve (or resume) any run's stream.

Tailing: one LISTEN connection per API process (`RunEventHub`) wakes the streams of the run id
named in each `run_events` NOTIFY; every stream also re-queries every `POLL_S` seconds, so a
lost notification (listener reconnecting, Postgres failover) only delays events.

The database away (restarting, failing over, or a pool that cannot hand out a connection in
time on a busy machine) only pauses a stream: every read is idempotent from the stream's cursor,
so a failed one is retried, with keepalives meanwhile. A stream ends with an `error` event only
when the database has been unreachable for `DB_GIVE_UP_S`; the client then resumes from its
last event id.

Retried generations (a worker crashed mid-message): the inference activity marks the failed
attempt's deltas `discarded` and the retry writes the message again from its start. A client
cannot be asked to forget text, so per message content part a stream tracks the text the client
already holds (`PartText`): a client that never saw the discarded text gets the retry's deltas
as they are; a client that did see it gets only what the retry adds beyond that text, provided
the retry reproduces it (greedy or seeded decoding does). If the retry diverges, the stream
sends no more deltas for that part, and `thread.message.completed` (which the SDK takes whole
as the message snapshot) carries the stored text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from starlette.responses import StreamingResponse

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

POLL_S = 2.0  # safety-net re-query when no NOTIFY arrives
KEEPALIVE_S = 15.0  # comment line so proxies keep an idle stream open
BATCH = 500  # rows per query while replaying
DB_RETRY_MAX_S = 2.0  # longest pause between reads while the database is away
DB_GIVE_UP_S = 120.0  # unreachable this long: the stream really cannot go on
STOP_EVENTS = frozenset(
    {
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.requires_action",
    }
)
TERMINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled", "expired")
DONE = b"event: done\ndata: [DONE]\n\n"
# A comment line without the blank line that would end an event: the SDK's decoder would turn
# an empty event (which keeps the last id) into an empty `data` and fail to parse it.
KEEPALIVE = b": keepalive\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def encode(event: str, data: Any, seq: int | None = None) -> bytes:
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("_")}  # internal bookkeeping keys
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def error_event(message: str, type: str = "server_error", code: str | None = None) -> bytes:
    return encode("error", {"error": {"message": message, "type": type, "param": None, "code": code}})


# --- what one client holds ----------------------------------------------------------------------


@dataclass
class PartText:
    """The text of one message content part (or one tool call's arguments) as a client holds it."""

    shown: str = ""  # what the client holds
    regen: str = ""  # what the latest attempt has produced so far
    attempt: int = -1
    diverged: bool = False

    def feed(self, attempt: int, text: str) -> str | None:
        """Take a delta of `attempt`; return the text to send (None: send nothing)."""
        if attempt < self.attempt:  # a late write of a superseded attempt
            return None
        if attempt > self.attempt:
            self.attempt, self.regen = attempt, ""
        self.regen += text
        if self.diverged:
            return None
        if self.regen.startswith(self.shown):
            if len(self.regen) == len(self.shown):
                return None
            out, self.shown = self.regen[len(self.shown) :], self.regen
            return out
        if not self.shown.startswith(self.regen):
            self.diverged = True  # cannot be retracted: the completed object carries the stored text
        return None


@dataclass
class ClientView:
    """Turns log rows into the events one client gets, given what it already holds.

    Deltas are re-cut against what the client holds (see the module docstring). A tool call
    opens with a delta of empty arguments, as OpenAI's does (the SDK reports a call's first
    delta as `on_tool_call_created`, the rest as `on_tool_call_delta`); its id and name are sent
    once only, since the SDK concatenates every string it finds in a delta.
    """

    parts: dict[tuple[str, int], PartText] = field(default_factory=dict)
    known_calls: set[tuple[str, int]] = field(default_factory=set)  # the client has their id and name
    opened_calls: set[tuple[str, int]] = field(default_factory=set)  # ... and their opening delta

    def render(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The events' data for one log row (the last one carries the row's id); [] for none."""
        event, data = row["event"], row["data"]
        if event == "thread.message.delta":
            return self._message_delta(row)
        if event == "thread.run.step.delta":
            return self._step_delta(row)
        if event.startswith("thread.run.step.") and isinstance(data.get("step_details"), dict):
            for i, _ in enumerate(data["step_details"].get("tool_calls") or []):
                self.known_calls.add((data["id"], i))
        return [data]

    def _feed(self, key: tuple[str, int], row: dict[str, Any], text: str) -> str | None:
        return self.parts.setdefault(key, PartText()).feed(row["attempt"], text)

    def _message_delta(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        data = row["data"]
        content = []
        for part in (data.get("delta") or {}).get("content") or []:
            if part.get("type") != "text":
                content.append(part)
                continue
            value = self._feed((data["id"], part["index"]), row, (part.get("text") or {}).get("value") or "")
            if value:
                content.append({**part, "text": {**(part.get("text") or {}), "value": value}})
        return [{**data, "delta": {**data["delta"], "content": content}}] if content else []

    def _step_delta(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        data = row["data"]
        details = (data.get("delta") or {}).get("step_details") or {}
        if details.get("type") != "tool_calls":
            return [data]
        opening, calls = [], []
        for call in details.get("tool_calls") or []:
            key, fn = (data["id"], call["index"]), call.get("function")
            if call.get("type") != "function" or not isinstance(fn, dict):
                calls.append(call)  # code_interpreter / file_search deltas pass as written
                continue
            if key not in self.opened_calls:
                self.opened_calls.add(key)
                head: dict[str, Any] = {
                    "index": call["index"],
                    "type": "function",
                    "function": {"arguments": ""},
                }
                if key not in self.known_calls:
                    self.known_calls.add(key)
                    head.update(
                        id=call.get("id"), function={"name": fn.get("name"), "arguments": "", "output": None}
                    )
                opening.append(head)
            args = self._feed(key, row, fn.get("arguments") or "")
            if args:
                calls.append({"index": call["index"], "type": "function", "function": {"arguments": args}})

        def event(tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                **data,
                "delta": {**data["delta"], "step_details": {"type": "tool_calls", "tool_calls": tool_calls}},
            }

        return ([event(opening)] if opening else []) + ([event(calls)] if calls else [])


def restore_view(rows: list[dict[str, Any]], cursor: int) -> ClientView:
    """What a client resuming after `cursor` holds, from the run's events up to it.

    Two clients can hold different text at the same cursor: one that watched a crashed attempt
    live (it got the deltas later marked discarded), and one that connected after the discard
    (it never did). Replay both; the event at the cursor tells them apart, since a live client
    is only sent a retry's delta once the retry has gone past the text it holds.
    """
    watched, joined_later = ClientView(), ClientView()
    watched_got_cursor = True
    for row in rows:
        sent = watched.render(row)
        if not row["discarded"]:
            joined_later.render(row)
        if row["seq"] == cursor:
            watched_got_cursor = bool(sent)
    return watched if watched_got_cursor else joined_later


# --- the shared listener ------------------------------------------------------------------------


class RunEventHub:
    """One LISTEN connection per process, waking the streams of each NOTIFYed run id."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._subs: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, run_id: str) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="run-events-listener")
        wake = asyncio.Event()
        self._subs.setdefault(run_id, set()).add(wake)
        return wake

    def unsubscribe(self, run_id: str, wake: asyncio.Event) -> None:
        subs = self._subs.get(run_id)
        if subs is not None:
            subs.discard(wake)
            if not subs:
                del self._subs[run_id]

    def _wake_all(self) -> None:
        for subs in self._subs.values():
            for wake in subs:
                wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await AsyncConnection.connect(self.database_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    self._wake_all()  # anything appended while we were not listening
                    async for note in conn.notifies():
                        for wake in self._subs.get(note.payload, ()):
                            wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; streams poll meanwhile
                log.warning("run event listener lost its connection (%s); reconnecting", exc)
            self.listening.clear()
            self._wake_all()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def get_hub(request: Request) -> RunEventHub:
    hub = getattr(request.app.state, "run_event_hub", None)
    if hub is None:
        hub = RunEventHub(request.app.state.settings.database_url)
        request.app.state.run_event_hub = hub
    return hub


Hub = Annotated[RunEventHub, Depends(get_hub)]


# --- replay + tail ------------------------------------------------------------------------------


async def _rows_after(pool: DbPool, run_id: str, cursor: int) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, attempt, event, data, discarded FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (run_id, cursor, BATCH),
        )
        return await cur.fetchall()  # type: ignore[return-value]


async def _rows_upto(pool: DbPool, run_id: str, cursor: int) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT seq, attempt, event, data, discarded FROM run_events WHERE run_id = %s AND seq <= %s"
            " AND event LIKE 'thread.%%' AND (event LIKE '%%.delta' OR event LIKE 'thread.run.step.%%') ORDER BY seq",
            (run_id, cursor),
        )
        return await cur.fetchall()  # type: ignore[return-value]


async def _run_ended(pool: DbPool, run_id: str) -> bool:
    async with pool.connection() as conn:
        row: Any = await (await conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,))).fetchone()
    return row is None or row["status"] in TERMINAL_STATUSES


class DatabaseAway(Exception):
    """The database stayed unreachable for `DB_GIVE_UP_S`."""


@dataclass
class Outage:
    """Consecutive failed reads of one stream: how long to pause, and when to give up."""

    run_id: str
    since: float | None = None
    failures: int = 0

    def failed(self, exc: psycopg.OperationalError) -> float:
        """The pause before the next read; raises DatabaseAway once the outage lasts too long."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("streaming run %s: database unreachable (%s); retrying", self.run_id, exc)
        self.failures += 1
        if now - self.since >= DB_GIVE_UP_S:
            raise DatabaseAway(f"database unreachable for {now - self.since:.0f}s") from exc
        return min(DB_RETRY_MAX_S, 0.1 * 2**self.failures)

    def over(self) -> None:
        if self.since is not None:
            log.info("streaming run %s: database back after %d failed reads", self.run_id, self.failures)
        self.since, self.failures = None, 0


async def run_events(pool: DbPool, hub: RunEventHub, run_id: str, after: int = 0) -> AsyncIterator[bytes]:
    """The run's events after seq `after`, encoded, until a stop event; then `done`."""
    wake = hub.subscribe(run_id)
    outage = Outage(run_id)
    try:
        view: ClientView | None = None if after > 0 else ClientView()
        cursor, last_out, check_end = after, time.monotonic(), True
        while True:
            wake.clear()
            try:
                if view is None:
                    view = restore_view(await _rows_upto(pool, run_id, after), after)
                # Status before rows: a run whose final status this read sees has committed its
                # final events with it, so the rows read next include them. (Rows first could
                # miss events committed between the two reads, and end the stream without them.)
                ended = check_end and await _run_ended(pool, run_id)
                rows = await _rows_after(pool, run_id, cursor)
            except psycopg.OperationalError as exc:
                await asyncio.sleep(outage.failed(exc))
                if time.monotonic() - last_out >= KEEPALIVE_S:
                    yield KEEPALIVE
                    last_out = time.monotonic()
                continue
            outage.over()
            for row in rows:
                cursor = row["seq"]
                out = [] if row["discarded"] else view.render(row)
                if not out:
                    continue
                for data in out[:-1]:  # without an id: resuming before this row sends it again
                    yield encode(row["event"], data)
                yield encode(row["event"], out[-1], row["seq"])
                last_out = time.monotonic()
                if row["event"] in STOP_EVENTS:
                    yield DONE
                    return
            if len(rows) == BATCH:
                continue
            # Nothing after the cursor and the run over: its last event was before the cursor.
            if ended and not rows:
                yield DONE
                return
            try:
                await asyncio.wait_for(wake.wait(), POLL_S)
                check_end = False
            except TimeoutError:
                check_end = True
            if time.monotonic() - last_out >= KEEPALIVE_S:
                yield KEEPALIVE
                last_out = time.monotonic()
    except asyncio.CancelledError:
        raise  # the client went away; the run goes on without it
    except DatabaseAway as exc:
        log.error("streaming run %s: %s; ending the stream", run_id, exc)
        yield error_event(
            "The server cannot reach its database. Resume with Last-Event-ID.", code="database_unavailable"
        )
    except Exception:  # noqa: BLE001 - reported in-band: the response has already started
        log.exception("streaming run %s failed", run_id)
        yield error_event("The server had an error while streaming this run. Resume with Last-Event-ID.")
    finally:
        hub.unsubscribe(run_id, wake)


def stream_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)


def run_stream(pool: DbPool, hub: RunEventHub, run_id: str, after: int = 0) -> StreamingResponse:
    return stream_response(run_events(pool, hub, run_id, after))


# --- cursors for the streaming variants of create / submit ----------------------------------------


async def last_seq(pool: DbPool, run_id: str) -> int:
    """The run's newest event: a stream that starts after it shows only what happens next."""
    async with pool.connection() as conn:
        row: Any = await (
            await conn.execute(
                "SELECT coalesce(max(seq), 0) AS seq FROM run_events WHERE run_id = %s", (run_id,)
            )
        ).fetchone()
    return int(row["seq"]) if row else 0


async def reserve_seq(pool: DbPool) -> int:
    """A log position taken before a thread is created, so `thread.created` sorts before the run's
    own events (`thread.run.created`) and resumes like any other event."""
    async with pool.connection() as conn:
        row: Any = await (
            await conn.execute("SELECT nextval(pg_get_serial_sequence('run_events', 'seq')) AS seq")
        ).fetchone()
    assert row is not None
    return int(row["seq"])


async def record_thread_created(pool: DbPool, run_id: str, seq: int, thread: dict[str, Any]) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO run_events (seq, run_id, event, data) VALUES (%s, %s, 'thread.created', %s)",
            (seq, run_id, Jsonb(thread)),
        )
