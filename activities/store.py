"""Store activities: the run's reads and writes of Postgres, each idempotent.

Status transitions are conditional updates, so a retried activity or a late duplicate never moves
a run backwards (a cancelled run stays cancelled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_event, append_events, load_run
from assistants.file_search import file_citation_annotations
from assistants.io import (
    ChatMessage,
    FileSearchOutput,
    FileSearchResult,
    FinishRunInput,
    Prompt,
    PromptInput,
    RunPlan,
    RunRef,
    StepResult,
    ToolCallsInput,
    ToolOutputsInput,
)
from assistants.objects import TERMINAL_RUN_STATUSES, now
from assistants.settings import Settings

if TYPE_CHECKING:
    from activities.webhooks import RunEvents

# Searchable files that together fit in this many characters go whole into the prompt.
SHORT_DOCUMENTS_CHARS = 4000
_TIMESTAMP_OF = {
    "completed": "completed_at",
    "failed": "failed_at",
    "cancelled": "cancelled_at",
    "incomplete": "completed_at",
}


def _text_of(message: dict[str, Any]) -> str:
    parts = []
    for part in message.get("content", []):
        if part.get("type") == "text":
            parts.append(part["text"]["value"])
        elif part.get("type") in ("image_file", "image_url"):
            parts.append("[image]")
    return "\n".join(parts)


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


class StoreActivities:
    def __init__(self, pool: DbPool, settings: Settings, events: RunEvents | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.events = events  # webhooks: announces status changes; None = no announcements

    @activity.defn(name="start_run")
    async def start_run(self, ref: RunRef) -> RunPlan | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "UPDATE runs SET status = 'in_progress', data = data || jsonb_build_object('status', 'in_progress',"
                    " 'started_at', %s::bigint) WHERE id = %s AND project_id = %s AND status = 'queued' RETURNING data",
                    (now(), ref.run_id, ref.project_id),
                )
            ).fetchone()
            run = row["data"] if row else await load_run(conn, ref.run_id, ref.project_id)
            if run is None:
                raise ApplicationError(f"run {ref.run_id} not found", non_retryable=True)
            if row:
                await append_event(conn, ref.run_id, "thread.run.in_progress", run)
        if run["status"] in TERMINAL_RUN_STATUSES:
            return None
        limits = run.get("_limits", {})
        return RunPlan(
            model=run["model"],
            temperature=1.0 if run.get("temperature") is None else run["temperature"],
            top_p=1.0 if run.get("top_p") is None else run["top_p"],
            max_prompt_tokens=run.get("max_prompt_tokens"),
            max_completion_tokens=run.get("max_completion_tokens"),
            response_format=run.get("response_format") or "auto",
            tools=run.get("tools") or [],
            tool_choice=run.get("tool_choice") or "auto",
            parallel_tool_calls=run.get("parallel_tool_calls", True),
            expires_seconds=int(limits.get("expires_seconds", self.settings.run_expires_seconds)),
            assistant_id=run["assistant_id"],
            inference_task_queue=self.settings.inference_task_queue,
        )

    @activity.defn(name="build_prompt")
    async def build_prompt(self, inp: PromptInput) -> Prompt:
        async with self.pool.connection() as conn:
            run = await load_run(conn, inp.run_id, inp.project_id)
            assert run is not None
            rows = await (
                await conn.execute(
                    "SELECT data FROM messages WHERE thread_id = %s AND (run_id IS DISTINCT FROM %s OR data->>'role' = 'user')"
                    " AND data->>'status' = 'completed' ORDER BY seq",
                    (run["thread_id"], inp.run_id),
                )
            ).fetchall()
        messages: list[ChatMessage] = []
        system = run.get("instructions") or ""
        if any(t.get("type") == "file_search" for t in run.get("tools") or []):
            docs = await self._short_documents(run, inp.project_id)
            if docs:
                system = (system + "\n\n" if system else "") + "Documents the user provided:\n" + docs
        if system:
            messages.append(ChatMessage(role="system", content=system))
        history = [ChatMessage(role=r["data"]["role"], content=_text_of(r["data"])) for r in rows]
        strategy = run.get("truncation_strategy") or {"type": "auto"}
        last = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
        if last is not None:
            history = history[-last:]
        return Prompt(
            messages=messages + history, truncation=strategy.get("type", "auto"), last_messages=last
        )

    async def _short_documents(self, run: dict[str, Any], project_id: str) -> str:
        """The run's searchable files, whole, when together they are short: as the seed says,
        short documents go into the prompt; longer ones are searched."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    """
                WITH stores AS (
                  SELECT jsonb_array_elements_text(t.data->'tool_resources'->'file_search'->'vector_store_ids') AS id
                    FROM threads t WHERE t.id = %(thread)s
                  UNION SELECT jsonb_array_elements_text(a.data->'tool_resources'->'file_search'->'vector_store_ids')
                    FROM assistants a WHERE a.id = %(assistant)s
                )
                SELECT DISTINCT f.id, f.data->>'filename' AS filename, ft.text
                  FROM vector_store_files vf JOIN stores s ON s.id = vf.vector_store_id
                  JOIN files f ON f.id = vf.file_id JOIN file_texts ft ON ft.file_id = vf.file_id
                 WHERE vf.status = 'completed' AND vf.project_id = %(project)s
                 ORDER BY f.id LIMIT 20
                """,
                    {"thread": run["thread_id"], "assistant": run["assistant_id"], "project": project_id},
                )
            ).fetchall()
        total = sum(len(r["text"]) for r in rows)
        if not rows or total > SHORT_DOCUMENTS_CHARS:
            return ""
        return "\n\n".join(f"[{r['filename']}]\n{r['text'].strip()}" for r in rows)

    @activity.defn(name="complete_step")
    async def complete_step(self, res: StepResult) -> None:
        out = res.output
        ts = now()
        usage: dict[str, int] | None = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens,
        }
        events: list[tuple[str, dict[str, Any]]] = []
        async with self.pool.connection() as conn, conn.transaction():
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
                        Jsonb(
                            {
                                "usage": usage
                                or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
                            }
                        ),
                        out.tool_step_id or res.step_id,
                    ),
                )
            await append_events(conn, res.run_id, events)

    @activity.defn(name="require_action")
    async def require_action(self, inp: ToolCallsInput) -> None:
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in inp.tool_calls
                ]
            },
        }
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "UPDATE runs SET status = 'requires_action', data = data || jsonb_build_object('status', 'requires_action',"
                    " 'required_action', %s::jsonb, 'expires_at', %s::bigint) WHERE id = %s AND project_id = %s"
                    " AND status = 'in_progress' RETURNING data",
                    (Jsonb(required), now() + inp.expires_seconds, inp.run_id, inp.project_id),
                )
            ).fetchone()
            if row:
                await append_event(conn, inp.run_id, "thread.run.requires_action", row["data"])
        # After the commit, and on every attempt: emit is idempotent, and a crash between the commit
        # and here must not lose the announcement.
        if self.events:
            await self.events.emit(inp.run_id, inp.project_id, "requires_action")

    @activity.defn(name="record_tool_outputs")
    async def record_tool_outputs(self, inp: ToolOutputsInput) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            step = await (
                await conn.execute("SELECT data FROM run_steps WHERE id = %s", (inp.step_id,))
            ).fetchone()
            if step and step["data"]["status"] == "in_progress":
                details = step["data"]["step_details"]
                for call in details.get("tool_calls", []):
                    if call["id"] in inp.outputs and call.get("type") == "function":
                        call["function"]["output"] = inp.outputs[call["id"]]
                fields = {"step_details": details, "status": "completed", "completed_at": now()}
                row = await (
                    await conn.execute(
                        "UPDATE run_steps SET data = data || %s WHERE id = %s RETURNING data",
                        (Jsonb(fields), inp.step_id),
                    )
                ).fetchone()
                await append_event(
                    conn, inp.run_id, "thread.run.step.completed", row["data"] if row else fields
                )
            row = await (
                await conn.execute(
                    "UPDATE runs SET status = 'in_progress', data = data || jsonb_build_object('status', 'in_progress',"
                    " 'required_action', null) WHERE id = %s AND project_id = %s AND status = 'requires_action' RETURNING data",
                    (inp.run_id, inp.project_id),
                )
            ).fetchone()
            if row:
                await append_event(conn, inp.run_id, "thread.run.queued", row["data"])
                await append_event(conn, inp.run_id, "thread.run.in_progress", row["data"])

    @activity.defn(name="finish_run")
    async def finish_run(self, inp: FinishRunInput) -> None:
        ts = now()
        fields: dict[str, Any] = {"status": inp.status, "required_action": None}
        if inp.status in _TIMESTAMP_OF:
            fields[_TIMESTAMP_OF[inp.status]] = ts
        if inp.incomplete_reason:
            fields["incomplete_details"] = {"reason": inp.incomplete_reason}
        if inp.error_code or inp.error_message:
            fields["last_error"] = {
                "code": inp.error_code or "server_error",
                "message": inp.error_message or "",
            }
        step_status = {"cancelled": "cancelled", "failed": "failed", "expired": "expired"}.get(
            inp.status, "cancelled"
        )
        step_ts = {"cancelled": "cancelled_at", "failed": "failed_at", "expired": "expired_at"}.get(
            inp.status, "cancelled_at"
        )
        events: list[tuple[str, dict[str, Any]]] = []
        async with self.pool.connection() as conn, conn.transaction():
            # Whatever a run left unfinished ends with it.
            for row in await (
                await conn.execute(
                    "UPDATE run_steps SET data = data || jsonb_build_object('status', %s::text, %s::text, %s::bigint)"
                    " WHERE run_id = %s AND data->>'status' = 'in_progress' RETURNING data",
                    (step_status, step_ts, ts, inp.run_id),
                )
            ).fetchall():
                events.append((f"thread.run.step.{step_status}", row["data"]))
            for row in await (
                await conn.execute(
                    "UPDATE messages SET data = data || jsonb_build_object('status', 'incomplete', 'incomplete_at', %s::bigint,"
                    " 'incomplete_details', jsonb_build_object('reason', %s::text)) WHERE run_id = %s AND data->>'status' = 'in_progress'"
                    " RETURNING data",
                    (
                        ts,
                        "run_" + inp.status
                        if inp.status in ("cancelled", "expired", "failed")
                        else "max_tokens",
                        inp.run_id,
                    ),
                )
            ).fetchall():
                events.append(("thread.message.incomplete", row["data"]))
            usage = await (
                await conn.execute(
                    "SELECT coalesce(sum((data->'usage'->>'prompt_tokens')::bigint), 0)::bigint AS p,"
                    " coalesce(sum((data->'usage'->>'completion_tokens')::bigint), 0)::bigint AS c FROM run_steps WHERE run_id = %s",
                    (inp.run_id,),
                )
            ).fetchone()
            assert usage is not None
            fields["usage"] = {
                "prompt_tokens": usage["p"],
                "completion_tokens": usage["c"],
                "total_tokens": usage["p"] + usage["c"],
            }
            run_row = await (
                await conn.execute(
                    "UPDATE runs SET status = %s, data = data || %s WHERE id = %s AND project_id = %s"
                    " AND status NOT IN ('completed', 'incomplete', 'failed', 'cancelled', 'expired') RETURNING data",
                    (inp.status, Jsonb(fields), inp.run_id, inp.project_id),
                )
            ).fetchone()
            if run_row:
                events.append((f"thread.run.{inp.status}", run_row["data"]))
            await append_events(conn, inp.run_id, events)
        if self.events:  # see require_action
            await self.events.emit(inp.run_id, inp.project_id, inp.status)
