"""Built-in tools in runs: code_interpreter (the thread's sandbox session) and file_search (hybrid
search over the run's vector stores). One activity runs a step's built-in calls, records their
outputs on the run step in the official shape, and returns what the model reads next."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_events
from assistants.file_search import file_search_step_details, file_search_tool_output, ranking_options
from assistants.files_store import FilesStore
from assistants.io import BuiltinToolsInput, BuiltinToolsOutput, FileSearchInput, ToolCall
from assistants.objects import now
from assistants.settings import Settings

log = logging.getLogger(__name__)

MODEL_OUTPUT_CHARS = 2000  # what the model reads back from a tool (small context windows)
SEARCH_RESULTS = 5


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
        beat = asyncio.create_task(self._heartbeat())
        try:
            details: list[dict[str, Any]] = []
            outputs: dict[str, str] = {}
            for call in inp.calls:
                if call.type == "file_search":
                    detail, text = await self._file_search(inp, call)
                elif call.type == "code_interpreter":
                    detail, text = await self._code(inp, call)
                else:
                    raise ApplicationError(
                        f"unknown built-in tool {call.type}", type="InvalidRequest", non_retryable=True
                    )
                details.append(detail)
                outputs[call.id] = text[:MODEL_OUTPUT_CHARS]
            await self._record(inp, details)
            return BuiltinToolsOutput(outputs=outputs)
        finally:
            beat.cancel()

    async def _heartbeat(self) -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(2)

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

    async def _code(self, inp: BuiltinToolsInput, call: ToolCall) -> tuple[dict[str, Any], str]:
        from activities.sandbox.base import SandboxUnavailable

        code = str(_args(call).get("code") or "")
        if self.sessions is None:
            raise ApplicationError(
                "code_interpreter is not available on this worker",
                type="SandboxUnavailable",
                non_retryable=True,
            )

        async def restore() -> list[tuple[str, bytes]]:
            return await self._thread_files(inp)

        try:
            async with self.sessions.use(inp.thread_id, restore) as sandbox:
                before = {f.path: (f.size, f.mtime) for f in await sandbox.list_files()}
                execution = await sandbox.run_code(code)
                written = [f for f in await sandbox.list_files() if before.get(f.path) != (f.size, f.mtime)]
                files = [(f.path, await sandbox.read_file(f.path)) for f in written]
        except SandboxUnavailable as exc:
            raise ApplicationError(
                f"code_interpreter is unavailable: {exc}", type="SandboxUnavailable", non_retryable=True
            ) from None
        logs = execution.stdout + execution.stderr
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
            file_id = await self.files.put(inp.project_id, f"image_{call.id}_{n}.png", result.png)
            outputs.append({"type": "image", "image": {"file_id": file_id}})
            produced.append({"kind": "image", "file_id": file_id})
        for path, data in files:
            file_id = await self.files.put(inp.project_id, path.rsplit("/", 1)[-1], data)
            produced.append(
                {
                    "kind": "file",
                    "file_id": file_id,
                    "path": path if path.startswith("/") else f"/mnt/data/{path}",
                }
            )
        if produced:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "UPDATE runs SET data = jsonb_set(data, '{_files}', coalesce(data->'_files', '[]'::jsonb) || %s) WHERE id = %s",
                    (Jsonb(produced), inp.run_id),
                )
        detail = {
            "id": call.id,
            "type": "code_interpreter",
            "code_interpreter": {"input": code, "outputs": outputs},
        }
        text = logs or "(no output)"
        if produced:
            text += "\nFiles: " + ", ".join(p.get("path", "image") for p in produced)
        return detail, text
