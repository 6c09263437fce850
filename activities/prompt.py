"""A turn's prompt, read from Postgres by (run, turn): the generate activity's first stage.

What the model sees: the run's instructions (plus short documents when file_search is on), the
thread's messages, and this run's earlier tool calls with their results. Nothing of it travels
through workflow history. The thread is read newest-first and reading stops once the messages
read exceed what the context could hold, so a thread of 100 MB costs no more than a short one;
the token-exact trim happens after rendering (activities/inference.py `_fit_prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from activities.history_items import item_messages, merged
from activities.tool_call_objects import tool_call_object
from assistants.db.pool import Pool as DbPool
from assistants.payloads import ChatMessage, ToolCall

# Searchable files that together fit in this many characters go whole into the prompt.
SHORT_DOCUMENTS_CHARS = 4000
# No tokenizer packs more than this many characters into one token on real text, so messages
# beyond `context tokens * CHARS_PER_TOKEN` characters can never fit and are not read.
CHARS_PER_TOKEN = 16
# A tool result the model reads is clipped to half as many characters as the context has tokens,
# so that even text taking a token per character leaves half the context for the rest.
TOOL_OUTPUT_TOKENS_PER_CHAR = 2
TRUNCATED_MARK = "\n[... output truncated]"
# Rows fetched per round trip while reading the thread newest-first: a few at first (messages
# can be 256k characters each, and usually two or three fill the context), doubling up to 64.
_FIRST_BATCH, _MAX_BATCH = 4, 64
IMAGE_PARTS = ("image_file", "image_url")


@dataclass
class TurnContext:
    """What a turn needs besides the GenerateInput's ids: read from the run's row and the thread."""

    messages: list[ChatMessage]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    response_format: Any = "auto"
    truncation: str = "auto"
    last_messages: int | None = None
    reasoning_effort: str | None = None


def text_of(message: dict[str, Any]) -> str:
    """A message's text. Images in an assistant message (plots its code produced) stay a mark:
    chat models take images in user turns only. A user message's images go in `parts`."""
    parts = []
    for part in message.get("content", []):
        if part.get("type") == "text":
            parts.append(part["text"]["value"])
        elif part.get("type") in IMAGE_PARTS:
            parts.append("[image]")
    return "\n".join(parts)


def user_parts(content: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """A user message's content as chat parts (text as a plain string) when it holds images;
    None when its text is all there is."""
    if not any(p.get("type") in IMAGE_PARTS for p in content):
        return None
    return [{"type": "text", "text": p["text"]["value"]} if p.get("type") == "text" else p for p in content]


def stored_message(role: str, content: list[dict[str, Any]]) -> ChatMessage:
    """A message as the Messages API stores it (`content` parts) -> what the model reads."""
    parts = user_parts(content) if role == "user" else None
    text = (
        text_of({"content": content})
        if parts is None
        else "\n".join(p["text"] for p in parts if p["type"] == "text")
    )
    return ChatMessage(role=role, content=text, parts=parts)


async def short_documents(pool: DbPool, run: dict[str, Any], project_id: str) -> str:
    """The run's searchable files, whole, when together they are short: as the seed says,
    short documents go into the prompt; longer ones are searched. `run["vector_store_ids"]`, when
    present, adds stores not (yet) attached to its thread (an input token count's)."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                """
            WITH stores AS (
              SELECT jsonb_array_elements_text(t.data->'tool_resources'->'file_search'->'vector_store_ids') AS id
                FROM threads t WHERE t.id = %(thread)s
              UNION SELECT jsonb_array_elements_text(a.data->'tool_resources'->'file_search'->'vector_store_ids')
                FROM assistants a WHERE a.id = %(assistant)s
              UNION SELECT unnest(%(extra)s::text[])
            )
            SELECT DISTINCT f.id, f.data->>'filename' AS filename, left(ft.text, %(cap)s) AS text
              FROM vector_store_files vf JOIN stores s ON s.id = vf.vector_store_id
              JOIN files f ON f.id = vf.file_id JOIN file_texts ft ON ft.file_id = vf.file_id
             WHERE vf.status = 'completed' AND vf.project_id = %(project)s
             ORDER BY f.id LIMIT 20
            """,
                {
                    "thread": run["thread_id"],
                    "assistant": run["assistant_id"],
                    "extra": list(run.get("vector_store_ids") or []),
                    "project": project_id,
                    "cap": SHORT_DOCUMENTS_CHARS + 1,
                },
            )
        ).fetchall()
    total = sum(len(r["text"]) for r in rows)
    if not rows or total > SHORT_DOCUMENTS_CHARS:
        return ""
    return "\n\n".join(f"[{r['filename']}]\n{r['text'].strip()}" for r in rows)


async def system_prompt(pool: DbPool, run: dict[str, Any], project_id: str) -> str:
    system: str = run.get("instructions") or ""
    if any(t.get("type") == "file_search" for t in run.get("tools") or []):
        docs = await short_documents(pool, run, project_id)
        if docs:
            system = (system + "\n\n" if system else "") + "Documents the user provided:\n" + docs
    return system


async def thread_history(
    pool: DbPool,
    thread_id: str,
    run_id: str,
    char_budget: int,
    last_messages: int | None,
    until_seq: int | None = None,
) -> list[ChatMessage]:
    """The thread's completed messages (not this run's own answers; none after `until_seq`) and its
    other items (replayed tool calls and outputs, activities/history_items.py), oldest first, read newest-first until `char_budget` is spent or `last_messages` are read. The
    newest message is always kept (the caller decides whether it fits)."""
    newest_first: list[ChatMessage] = []
    spent = 0
    before: int | None = None if until_seq is None else until_seq + 1
    batch = _FIRST_BATCH
    limit = last_messages
    output_chars = max(1, char_budget // CHARS_PER_TOKEN // TOOL_OUTPUT_TOKENS_PER_CHAR)
    async with pool.connection() as conn:
        while limit is None or len(newest_first) < limit:
            # Messages and the thread's other items (replayed calls and outputs) share one order.
            rows = await (
                await conn.execute(
                    "SELECT seq, data->>'role' AS role, data->'content' AS content, NULL::jsonb AS item"
                    " FROM messages WHERE thread_id = %(thread)s"
                    " AND (run_id IS DISTINCT FROM %(run)s OR data->>'role' = 'user')"
                    " AND data->>'status' = 'completed' AND (%(before)s::bigint IS NULL OR seq < %(before)s::bigint)"
                    " UNION ALL SELECT seq, NULL, NULL, data FROM thread_items WHERE thread_id = %(thread)s"
                    " AND (%(before)s::bigint IS NULL OR seq < %(before)s::bigint)"
                    " ORDER BY seq DESC LIMIT %(batch)s",
                    {"thread": thread_id, "run": run_id, "before": before, "batch": batch},
                )
            ).fetchall()
            for r in rows:
                if r["item"] is not None:
                    shown = item_messages(r["item"], output_chars)[::-1]
                else:
                    shown = [stored_message(r["role"], r["content"] or [])]
                size = sum(len(m.content) + len(str(m.tool_calls or "")) for m in shown)
                if newest_first and spent + size > char_budget:
                    return merged(newest_first[::-1])
                spent += size
                for message in shown:
                    # A single message longer than the whole budget cannot fit: keep only what
                    # shows that (the trim after rendering then reports the prompt too long).
                    message.content = message.content[: char_budget + 1]
                    newest_first.append(message)
                if limit is not None and len(newest_first) >= limit:
                    break
            if len(rows) < batch:
                break
            before = rows[-1]["seq"]
            batch = min(batch * 2, _MAX_BATCH)
    return merged(newest_first[::-1])


def clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars] + TRUNCATED_MARK


async def run_tool_turns(pool: DbPool, run_id: str, turn: int, output_chars: int) -> list[ChatMessage]:
    """This run's earlier tool calls and their results, turn by turn, as chat messages; each
    result clipped to `output_chars` (a 512 KB function output must not crowd out the rest)."""
    async with pool.connection() as conn:
        turns = await (
            await conn.execute(
                "SELECT output FROM run_turns WHERE run_id = %s AND turn < %s ORDER BY turn", (run_id, turn)
            )
        ).fetchall()
        results = {
            r["call_id"]: r["output"]
            for r in await (
                await conn.execute(
                    "SELECT call_id, output FROM run_tool_results WHERE run_id = %s", (run_id,)
                )
            ).fetchall()
        }
    out: list[ChatMessage] = []
    for row in turns:
        calls = row["output"].get("tool_calls") or []
        if not calls:
            continue
        out.append(
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=[tool_call_object(ToolCall(**c), in_step=False) for c in calls],
            )
        )
        out += [
            ChatMessage(
                role="tool", content=clip(results.get(c["id"], ""), output_chars), tool_call_id=c["id"]
            )
            for c in calls
        ]
    return out


def truncation_of(run: dict[str, Any]) -> tuple[str, int | None]:
    """The run's `truncation_strategy`: its type ("auto" or "last_messages") and N for the latter;
    "disabled" for a response created with `truncation: "disabled"` (a prompt that does not fit
    then ends the response incomplete instead of losing its oldest turns)."""
    if run.get("_truncation") == "disabled":
        return "disabled", None
    strategy = run.get("truncation_strategy") or {"type": "auto"}
    last = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
    return strategy.get("type", "auto"), last


async def load_turn_context(
    pool: DbPool, run: dict[str, Any], project_id: str, turn: int, context_tokens: int
) -> TurnContext:
    truncation, last = truncation_of(run)
    if run.get("max_prompt_tokens"):
        context_tokens = min(context_tokens, int(run["max_prompt_tokens"]))
    messages: list[ChatMessage] = []
    system = await system_prompt(pool, run, project_id)
    if system:
        messages.append(ChatMessage(role="system", content=system))
    messages += await thread_history(
        pool, run["thread_id"], run["id"], context_tokens * CHARS_PER_TOKEN, last
    )
    earlier = await run_tool_turns(pool, run["id"], turn, context_tokens // TOOL_OUTPUT_TOKENS_PER_CHAR)
    messages += earlier
    tool_choice = (run.get("tool_choice") or "auto") if turn == 0 else "auto"
    made = sum(len(m.tool_calls or []) for m in earlier)
    if run.get("_max_tool_calls") is not None and made >= int(run["_max_tool_calls"]):
        tool_choice = "none"  # a response's `max_tool_calls` is spent: the model answers
    return TurnContext(
        messages=messages,
        tools=run.get("tools") or [],
        tool_choice=tool_choice,
        response_format=run.get("response_format") or "auto",
        truncation=truncation,
        last_messages=last,
        reasoning_effort=run.get("reasoning_effort"),
    )
