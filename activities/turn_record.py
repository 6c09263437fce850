"""Finishing a model turn's rows: the assistant message's final content (text, citations, files
the run's tools produced) and status, and the turn's step(s) with usage.

Owner: the generate activity finishes its own turn (since history-by-reference), in the same
transaction that records the turn in run_turns; the store activity `complete_step` calls this for
runs started before that. Updates are conditional on `in_progress`, so a repeat changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from psycopg.types.json import Jsonb

from assistants.db.pool import Conn as DbConn
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_events, load_run
from assistants.file_search import file_citation_annotations
from assistants.objects import now
from assistants.payloads import (
    FileSearchOutput,
    FileSearchResult,
    GenerateInput,
    GenerateOutput,
    StepResult,
    ToolCall,
)


async def _final_content(
    conn: Any, res: StepResult, text: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The message content: the model's text, plus what the run's tools produced — citations of
    the files file_search used, links to files code wrote, images it displayed. Whatever is
    added beyond the streamed text is returned as one more delta, so streams equal the message."""
    run = await load_run(conn, res.run_id, res.project_id) or {}
    annotations: list[dict[str, Any]] = []
    added = ""
    rows = await (
        await conn.execute(
            "SELECT call->'file_search'->'results' AS results FROM run_steps, jsonb_array_elements(data->'step_details'->'tool_calls') call"
            " WHERE run_id = %s AND call->>'type' = 'file_search' ORDER BY seq",
            (res.run_id,),
        )
    ).fetchall()
    last = (
        [
            FileSearchResult(
                file_id=h["file_id"], filename=h.get("file_name") or "", score=h.get("score", 0.0), text=""
            )
            for h in (rows[-1]["results"] or [])
        ]
        if rows
        else []
    )
    # Markers the model wrote itself (it was shown sources as 【n†name】) point at those results.
    annotations += file_citation_annotations(text, FileSearchOutput(results=last))
    cited: dict[str, str] = {}
    for r in rows if not annotations else []:
        for hit in r["results"] or []:
            if hit["file_id"] not in cited and len(cited) < 3:
                cited[hit["file_id"]] = hit.get("file_name") or hit["file_id"]
    # Otherwise cite the files the answer was grounded on, after the text.
    for n, (file_id, name) in enumerate(cited.items()):
        marker = f"【{n}:0†{name}】"
        start = len(text) + len(added)
        added += marker
        annotations.append(
            {
                "type": "file_citation",
                "text": marker,
                "start_index": start,
                "end_index": start + len(marker),
                "file_citation": {"file_id": file_id},
            }
        )
    images = []
    for produced in run.get("_files") or []:
        if produced["kind"] == "image":
            images.append(
                {"type": "image_file", "image_file": {"file_id": produced["file_id"], "detail": "auto"}}
            )
            continue
        link = f"sandbox:{produced['path']}"
        added += ("\n" if text or added else "") + link
        start = len(text) + len(added) - len(link)
        annotations.append(
            {
                "type": "file_path",
                "text": link,
                "start_index": start,
                "end_index": start + len(link),
                "file_path": {"file_id": produced["file_id"]},
            }
        )
    content = [{"type": "text", "text": {"value": text + added, "annotations": annotations}}] + images
    if not added and not images:
        return content, None
    parts: list[dict[str, Any]] = []
    if added:
        parts.append({"index": 0, "type": "text", "text": {"value": added, "annotations": annotations}})
    parts += [{"index": i + 1, **img} for i, img in enumerate(images)]
    return content, {"id": res.message_id, "object": "thread.message.delta", "delta": {"content": parts}}


async def finish_turn_rows(conn: DbConn, res: StepResult) -> list[tuple[str, dict[str, Any]]]:
    """Finish the turn's message and steps; returns the events to append (same transaction)."""
    out = res.output
    ts = now()
    usage: dict[str, Any] | None = step_usage(out)
    events: list[tuple[str, dict[str, Any]]] = []
    if out.created_message:
        incomplete = out.finish_reason == "length"
        content, extra_delta = await _final_content(conn, res, out.text)
        if extra_delta:
            events.append(("thread.message.delta", extra_delta))
        fields: dict[str, Any] = {
            "content": content,
            "status": "incomplete" if incomplete else "completed",
        }
        fields["incomplete_details" if incomplete else "completed_at"] = (
            {"reason": "max_tokens"} if incomplete else ts
        )
        if incomplete:
            fields["incomplete_at"] = ts
        row = await (
            await conn.execute(
                "UPDATE messages SET data = data || %s WHERE id = %s AND data->>'status' = 'in_progress' RETURNING data",
                (Jsonb(fields), res.message_id),
            )
        ).fetchone()
        if row:
            events.append(
                (
                    "thread.message.incomplete" if incomplete else "thread.message.completed",
                    row["data"],
                )
            )
    if out.created_message:
        row = await (
            await conn.execute(
                "UPDATE run_steps SET data = data || %s WHERE id = %s AND data->>'status' = 'in_progress' RETURNING data",
                (Jsonb({"usage": usage, "status": "completed", "completed_at": ts}), res.step_id),
            )
        ).fetchone()
        if row:
            events.append(("thread.run.step.completed", row["data"]))
        usage = None  # counted once, on the first step of the turn
    if out.tool_calls:
        # Stays in_progress until the outputs arrive (record_tool_outputs completes it).
        await conn.execute(
            "UPDATE run_steps SET data = data || %s WHERE id = %s",
            (
                Jsonb({"usage": usage or step_usage(GenerateOutput("", 0, 0, ""))}),
                out.tool_step_id or res.step_id,
            ),
        )
    return events


def step_usage(out: GenerateOutput) -> dict[str, Any]:
    """A turn's usage as its step records it: the Assistants fields, and the details of Chat
    Completions usage (cached prompt tokens, reasoning tokens), which run and response usage add up."""
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": out.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": out.reasoning_tokens},
    }


def _slim(out: GenerateOutput) -> GenerateOutput:
    """What the workflow needs of a turn: counts, finish reason, the calls to dispatch. The text
    stays in the message row; call arguments are the model's (bounded by its token budget)."""
    return dataclasses.replace(out, text="")


async def recorded_turn(pool: DbPool, run_id: str, turn: int) -> GenerateOutput | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT output FROM run_turns WHERE run_id = %s AND turn = %s", (run_id, turn))
        ).fetchone()
    if row is None:
        return None
    data = dict(row["output"])
    data["tool_calls"] = [ToolCall(**c) for c in data.get("tool_calls") or []]
    return GenerateOutput(**data)


async def record_turn(pool: DbPool, inp: GenerateInput, out: GenerateOutput) -> GenerateOutput:
    """Finish the turn's rows and record it under (run, turn), in one transaction."""
    slim = _slim(out)
    res = StepResult(
        run_id=inp.run_id,
        project_id=inp.project_id,
        turn=inp.turn,
        output=out,
        message_id=inp.message_id,
        step_id=inp.step_id,
    )
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO run_turns (run_id, turn, project_id, output, created_at) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, turn) DO NOTHING",
            (inp.run_id, inp.turn, inp.project_id, Jsonb(dataclasses.asdict(slim)), now()),
        )
        if cur.rowcount == 1:
            await append_events(conn, inp.run_id, await finish_turn_rows(conn, res))
            return slim
    # A stale attempt (one Temporal already gave up on) recorded the turn first: its record stands.
    recorded = await recorded_turn(pool, inp.run_id, inp.turn)
    assert recorded is not None
    return recorded
