"""What one client of a run's stream holds, and the events that bring it up to date.

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

from dataclasses import dataclass, field
from typing import Any


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
