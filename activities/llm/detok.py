"""Incremental detokenization: text pieces that never split a character.

Byte-level BPE tokens often carry part of a multi-byte UTF-8 character; decoding such a
prefix yields U+FFFD. We decode a small window of recent tokens and hold text back while it
ends in U+FFFD, so a delta is only emitted once its characters are complete. Decoding a window
(not the whole sequence) keeps each step O(1) instead of O(length).

`finish()` reconciles with a full decode, so the concatenation of every piece returned equals
`tokenizer.decode(all_ids, skip_special_tokens=True)` whenever that full decode extends what
was already emitted (always, for byte-level BPE); otherwise the streamed text wins and is
what the result reports, so streamed and final text never disagree.
"""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        # Tokens before prefix_offset are settled; [prefix_offset, read_offset) gives context
        # for the decoder (leading-space handling), [read_offset, ...) is not yet emitted.
        self._prefix_offset = 0
        self._read_offset = 0
        self._emitted: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._emitted)

    def _decode(self, ids: list[int]) -> str:
        text = self._tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        # A byte-level token can decode to U+0000, which Postgres text and jsonb cannot hold
        # (the event log and the message would refuse the whole delta): it is dropped.
        return str(text).replace("\x00", "")

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly "")."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(_REPLACEMENT):
            delta = new_text[len(prefix_text) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            self._emitted.append(delta)
            return delta
        return ""

    def finish(self) -> str:
        """Flush whatever is still held back (e.g. an incomplete character at the very end)."""
        full = self._decode(self._ids)
        done = self.text
        if full.startswith(done) and len(full) > len(done):
            delta = full[len(done) :]
        else:
            tail = self._decode(self._ids[self._prefix_offset :])
            prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
            delta = tail[len(prefix) :] if tail.startswith(prefix) else ""
        if delta:
            self._emitted.append(delta)
        return delta
