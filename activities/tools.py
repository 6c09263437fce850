"""Built-in tools in runs: code_interpreter (the thread's sandbox session) and file_search (hybrid
search over the run's vector stores). One activity runs a step's built-in calls, records their
outputs on the run step in the official shape, and returns what the model reads next.

Exactly once: each call's result (the step detail and the text the model reads next) is written
to `run_tool_results` under its call id right after the call executes, before the next call and
before the activity returns; this activity is that table's only writer for built-in calls. A
retried attempt returns the recorded result instead of executing the call again. Files the code
produces get ids derived from (run, call, path or image index) and are inserted idempotently, so
a call executed again after a crash (before its row was written) adds no second File. A retried
attempt also drops this worker's live kernel for the thread before it executes an unrecorded
cell: the earlier attempt may have run that cell without recording it, and the kernel rebuilt
from the recorded cells (see `activities.sandbox.sessions`) holds each of them exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_events
from assistants.file_search import file_search_step_details, file_search_tool_output, ranking_options
from assistants.files_store import FilesStore
from assistants.ids import derived_file_id
from assistants.objects import now
from assistants.payloads import BuiltinToolsInput, BuiltinToolsOutput, FileSearchInput, ToolCall
from assistants.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
MODEL_OUTPUT_CHARS = 2000  # what the model reads back from a tool (small context windows)
SEARCH_RESULTS = 5
# How both sandboxes report a cell cut at the time limit (the error line the logs end with).
TIMED_OUT = "TimeoutError: Execution exceeded the time limit"
# How a cell that killed its sandbox (a resource limit) is reported; like TIMED_OUT, never replayed.
SANDBOX_DIED = "SandboxDied"


def output_file_id(run_id: str, call_id: str, key: str | int) -> str:
    """The id of a File a code call produced: its path, or an image's index among the results."""
    return derived_file_id(run_id, call_id, key)


def returned_files(changed: list[Any], count: int, total: int) -> tuple[list[Any], list[str]]:
    """The changed files (`FileInfo`s, in path order) that become Files: at most `count` of them and
    `total` bytes together; and the paths of the rest."""
    kept: list[Any] = []
    skipped: list[str] = []
    size = 0
    for f in sorted(changed, key=lambda f: f.path):
        if len(kept) < count and size + f.size <= total:
            kept.append(f)
            size += f.size
        else:
            skipped.append(f.path)
    return kept, skipped


def result_delta(inp: BuiltinToolsInput, detail: dict[str, Any], index: int) -> dict[str, Any]:
    """The `thread.run.step.delta` with a built-in call's results, as OpenAI streams them: a
    code_interpreter call's outputs (indexed), a file_search call's results. Its input streamed
    while the model wrote it."""
    call: dict[str, Any] = {"index": index, "id": detail["id"], "type": detail["type"]}
    if detail["type"] == "code_interpreter":
        outputs = detail["code_interpreter"].get("outputs") or []
        call["code_interpreter"] = {"outputs": [{"index": i, **o} for i, o in enumerate(outputs)]}
    else:  # with result content: streams cut it unless the run asked for it (`include[]`)
        call["file_search"] = detail.get("file_search") or {}
    return {
        "id": inp.step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}},
    }


def _args(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ToolActivities:
    def __init__(self, pool: DbPool, settings: Settings, storage: Any, retrieval: Any, sessions: Any) -> None:
        self.pool, self.settings, self.storage, self.retrieval, self.sessions = (
            pool,
            settings,
            storage,
            retrieval,
            sessions,
        )
        self.files = FilesStore(pool, storage, settings.max_file_bytes)  # what the code produces

    @activity.defn(name="run_builtin_tools")
    async def run_builtin_tools(self, inp: BuiltinToolsInput) -> BuiltinToolsOutput:
        async with heartbeating(HEARTBEAT_EVERY_S):
            for call in inp.calls:
                if call.type not in ("file_search", "code_interpreter"):
                    raise ApplicationError(
                        f"unknown built-in tool {call.type}", type="InvalidRequest", non_retryable=True
                    )
            recorded = await self._recorded([c.id for c in inp.calls])
            # The previous attempt may have executed a cell it did not record: rebuild the kernel.
            drop_kernel = activity.info().attempt > 1
            details: list[dict[str, Any]] = []
            outputs: dict[str, str] = {}
            for index, call in enumerate(inp.calls):
                done = recorded.get(call.id)
                if done is None:
                    if call.type == "file_search":
                        detail, text = await self._file_search(inp, call)
                    else:
                        detail, text = await self._code(inp, call, drop_kernel)
                        drop_kernel = False
                    done = await self._save(inp, call, detail, text[:MODEL_OUTPUT_CHARS], index)
                details.append(done[0])
                outputs[call.id] = done[1]
            await self._record(inp, details)
            return BuiltinToolsOutput() if inp.by_reference else BuiltinToolsOutput(outputs=outputs)

    async def _recorded(self, call_ids: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT call_id, detail, output FROM run_tool_results WHERE call_id = ANY(%s)",
                    (call_ids,),
                )
            ).fetchall()
        return {r["call_id"]: (r["detail"], r["output"]) for r in rows}

    async def _save(
        self, inp: BuiltinToolsInput, call: ToolCall, detail: dict[str, Any], text: str, index: int = 0
    ) -> tuple[dict[str, Any], str]:
        """Record one call's result; when another attempt recorded it first, its result wins. The
        step delta that streams the result (code_interpreter outputs, file_search results) is
        appended in the same transaction, so it is sent once, whichever attempt recorded it."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    """
                    INSERT INTO run_tool_results
                      (call_id, project_id, run_id, step_id, thread_id, type, output, detail, created_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (call_id) DO NOTHING RETURNING call_id
                    """,
                    (
                        call.id,
                        inp.project_id,
                        inp.run_id,
                        inp.step_id,
                        inp.thread_id,
                        call.type,
                        text,
                        Jsonb(detail),
                        now(),
                    ),
                )
            ).fetchone()
            if row is not None:
                await append_events(
                    conn, inp.run_id, [("thread.run.step.delta", result_delta(inp, detail, index))]
                )
        if row is not None:
            return detail, text
        return (await self._recorded([call.id]))[call.id]

    async def _record(self, inp: BuiltinToolsInput, details: list[dict[str, Any]]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute("SELECT data FROM run_steps WHERE id = %s FOR UPDATE", (inp.step_id,))
            ).fetchone()
            if row is None:
                return
            step = row["data"]
            by_id = {d["id"]: d for d in details}
            calls = [by_id.get(c["id"], c) for c in step["step_details"].get("tool_calls", [])]
            fields: dict[str, Any] = {"step_details": {"type": "tool_calls", "tool_calls": calls}}
            if inp.complete_step:
                fields.update(status="completed", completed_at=now())
            new = await (
                await conn.execute(
                    "UPDATE run_steps SET data = data || %s WHERE id = %s RETURNING data",
                    (Jsonb(fields), inp.step_id),
                )
            ).fetchone()
            if new and inp.complete_step:
                await append_events(conn, inp.run_id, [("thread.run.step.completed", new["data"])])

    # --- file_search ---------------------------------------------------------------------------

    async def _file_search(self, inp: BuiltinToolsInput, call: ToolCall) -> tuple[dict[str, Any], str]:
        query = str(_args(call).get("query") or "")
        if self.retrieval is None:
            raise ApplicationError(
                "file_search is not available on this worker", type="InvalidRequest", non_retryable=True
            )
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT data->'tools' AS tools FROM runs WHERE id = %s", (inp.run_id,))
            ).fetchone()
        tool = next(
            (t for t in (row["tools"] if row else None) or [] if t.get("type") == "file_search"), None
        )
        ranking = ranking_options(tool)
        limit = ((tool or {}).get("file_search") or {}).get("max_num_results") or SEARCH_RESULTS
        found = await self.retrieval.file_search(
            FileSearchInput(
                project_id=inp.project_id,
                query=query,
                run_id=inp.run_id,
                max_num_results=limit,
                score_threshold=ranking["score_threshold"],
            )
        )
        [detail] = file_search_step_details(call.id, found, ranking)["tool_calls"]
        return detail, file_search_tool_output(found, max_chars=MODEL_OUTPUT_CHARS)

    # --- code_interpreter ----------------------------------------------------------------------

    async def _thread_files(self, inp: BuiltinToolsInput) -> list[tuple[str, bytes]]:
        """The thread's and assistant's code_interpreter files and code_interpreter attachments."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    """
                WITH r AS (SELECT data FROM runs WHERE id = %(run)s),
                ids AS (
                  SELECT jsonb_array_elements_text(t.data->'tool_resources'->'code_interpreter'->'file_ids') AS id
                    FROM threads t WHERE t.id = %(thread)s
                  UNION SELECT jsonb_array_elements_text(a.data->'tool_resources'->'code_interpreter'->'file_ids')
                    FROM assistants a, r WHERE a.id = r.data->>'assistant_id'
                  UNION SELECT att->>'file_id' FROM messages m, jsonb_array_elements(m.data->'attachments') att
                    WHERE m.thread_id = %(thread)s AND att->'tools' @> '[{"type": "code_interpreter"}]'
                )
                SELECT f.id, f.data->>'filename' AS filename FROM files f JOIN ids ON ids.id = f.id
                 WHERE f.project_id = %(project)s
                """,
                    {"run": inp.run_id, "thread": inp.thread_id, "project": inp.project_id},
                )
            ).fetchall()
        out = []
        for r in rows:
            data = await asyncio.to_thread(self.storage.read, inp.project_id, r["id"])
            out.append((r["filename"], data))
        return out

    async def _replay_cells(self, inp: BuiltinToolsInput, call: ToolCall) -> list[str]:
        """The thread's recorded code cells before this call, in execution order, of the session
        that would still be alive: a thread idle longer than the sessions' idle timeout starts a
        fresh kernel, as OpenAI's code interpreter does after an hour. Cells that hit the time
        limit are left out: replaying them would only spend that limit again."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    """
                    SELECT detail->'code_interpreter' AS ci, created_at FROM run_tool_results
                     WHERE thread_id = %s AND project_id = %s AND type = 'code_interpreter'
                       AND call_id <> %s
                     ORDER BY seq
                    """,
                    (inp.thread_id, inp.project_id, call.id),
                )
            ).fetchall()
        idle = float(getattr(self.sessions, "idle_timeout", float("inf")))
        start, last = len(rows), float(now())
        while start > 0 and last - rows[start - 1]["created_at"] <= idle:
            start -= 1
            last = rows[start]["created_at"]
        cells = []
        for r in rows[start:]:
            ci = r["ci"] or {}
            logs = "".join(o.get("logs", "") for o in ci.get("outputs") or [] if o.get("type") == "logs")
            if ci.get("input") and TIMED_OUT not in logs and f"{SANDBOX_DIED}: " not in logs:
                cells.append(ci["input"])
        return cells

    async def _code(
        self, inp: BuiltinToolsInput, call: ToolCall, drop_kernel: bool = False
    ) -> tuple[dict[str, Any], str]:
        from activities.sandbox.base import (
            Execution,
            ExecutionError,
            FileInfo,
            SandboxDead,
            SandboxUnavailable,
        )
        from activities.sandbox.limits import SandboxLimits

        limits = SandboxLimits.from_settings(self.settings)

        code = str(_args(call).get("code") or "")
        if self.sessions is None:
            raise ApplicationError(
                "code_interpreter is not available on this worker",
                type="SandboxUnavailable",
                non_retryable=True,
            )

        async def restore() -> list[tuple[str, bytes]]:
            return await self._thread_files(inp)

        async def replay() -> list[str]:
            return await self._replay_cells(inp, call)

        try:
            if drop_kernel:
                await self.sessions.close(inp.thread_id)
            async with self.sessions.use(inp.thread_id, restore, replay) as sandbox:
                before = {f.path: (f.size, f.mtime) for f in await sandbox.list_files()}
                written: list[FileInfo] = []
                try:
                    execution = await sandbox.run_code(code)
                    written = [
                        f for f in await sandbox.list_files() if before.get(f.path) != (f.size, f.mtime)
                    ]
                except SandboxDead as exc:
                    # A resource limit ended the kernel: report it (the next call starts a new
                    # sandbox, rebuilt without this cell) rather than retry the cell into it again.
                    msg = f"{exc}. The sandbox was restarted: its variables are gone."
                    execution = Execution(error=ExecutionError(SANDBOX_DIED, msg))
                kept, skipped = returned_files(written, limits.returned_files, limits.returned_bytes)
                opened = [(f.path, await sandbox.open_file(f.path)) for f in kept]
        except SandboxUnavailable as exc:
            raise ApplicationError(
                f"code_interpreter is unavailable: {exc}", type="SandboxUnavailable", non_retryable=True
            ) from None
        logs = execution.stdout + execution.stderr
        if skipped:
            logs += (
                f"[{len(skipped)} changed files not returned: over the limit of {limits.returned_files}"
                f" files or {limits.returned_bytes} bytes per execution: {', '.join(skipped[:5])}]\n"
            )
        # A cell's value (`6 * 7`) shows in the logs, as in a notebook and in OpenAI's tool.
        for r in execution.results:
            if r.is_main_result and r.text and not r.png:
                logs += r.text + "\n"
        if execution.error is not None:
            logs += f"{execution.error.name}: {execution.error.value}"
        outputs: list[dict[str, Any]] = []
        if logs:
            outputs.append({"type": "logs", "logs": logs})
        produced: list[dict[str, Any]] = []
        for n, result in enumerate(r for r in execution.results if r.png):
            file_id = await self.files.put(
                inp.project_id,
                f"image_{call.id}_{n}.png",
                result.png,
                file_id=output_file_id(inp.run_id, call.id, n),
            )
            outputs.append({"type": "image", "image": {"file_id": file_id}})
            produced.append({"kind": "image", "file_id": file_id})
        for path, src in opened:
            with src:  # streamed from the sandbox to storage, never read whole
                file_id = await self.files.put(
                    inp.project_id,
                    path.rsplit("/", 1)[-1],
                    src,
                    file_id=output_file_id(inp.run_id, call.id, path),
                )
            produced.append(
                {
                    "kind": "file",
                    "file_id": file_id,
                    "path": path if path.startswith("/") else f"/mnt/data/{path}",
                }
            )
        if produced:
            await self._add_run_files(inp.run_id, produced)
        detail = {
            "id": call.id,
            "type": "code_interpreter",
            "code_interpreter": {"input": code, "outputs": outputs},
        }
        text = logs or "(no output)"
        if produced:
            text += "\nFiles: " + ", ".join(p.get("path", "image") for p in produced)
        return detail, text

    async def _add_run_files(self, run_id: str, produced: list[dict[str, Any]]) -> None:
        """Append to the run's `_files` (read when the final message is written) the entries whose
        file id is not there yet: a call executed again adds nothing."""
        async with self.pool.connection() as conn:
            await conn.execute(
                """
                UPDATE runs SET data = jsonb_set(data, '{_files}', coalesce(data->'_files', '[]'::jsonb) || coalesce(
                  (SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(e, n)
                    WHERE NOT coalesce(data->'_files', '[]'::jsonb) @> jsonb_build_array(
                      jsonb_build_object('file_id', e->'file_id'))),
                  '[]'::jsonb))
                 WHERE id = %s
                """,
                (Jsonb(produced), run_id),
            )
