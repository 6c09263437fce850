"""Store activities: the workflow's reads and writes of the run in Postgres, each idempotent.

Who writes what (one owner per row):
- `runs` (status, required_action, usage, last_error): assistants/db/run_status.py, called by these
  store activities, the API (cancel, a workflow that never started) and the reconciler.
- the turn's assistant `messages` and `run_steps`: the `generate` activity creates and finishes
  them, and records the turn in `run_turns` (activities/turn_record.py); `complete_step` here
  finishes them only for runs started before history-by-reference. `finish_run` ends whatever a
  run left in progress.
- `run_tool_results`: `run_builtin_tools` for built-in calls, the API for function outputs;
  `record_tool_outputs` copies function outputs onto their step and completes it.

Status transitions are conditional updates (see run_status), so a retried activity or a late
duplicate never moves a run backwards (a cancelled run stays cancelled).
"""

from __future__ import annotations

from psycopg.types.json import Jsonb
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.prompt import system_prompt, text_of, truncation_of
from activities.tool_call_objects import tool_call_object
from activities.turn_record import finish_turn_rows
from assistants.db import run_status
from assistants.db.pool import Pool as DbPool
from assistants.db.runlog import append_event, append_events, load_run
from assistants.logjson import bind
from assistants.objects import TERMINAL_RUN_STATUSES, now
from assistants.payloads import (
    ChatMessage,
    FinishRunInput,
    Prompt,
    PromptInput,
    RunPlan,
    RunRef,
    StepResult,
    ToolCallsInput,
    ToolOutputsInput,
)
from assistants.settings import Settings
from assistants.webhook_announcer import WebhookAnnouncer


class StoreActivities:
    def __init__(self, pool: DbPool, settings: Settings, announcer: WebhookAnnouncer | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.announcer = announcer  # webhooks: announces status changes; None = no announcements

    @activity.defn(name="start_run")
    async def start_run(self, ref: RunRef) -> RunPlan | None:
        async with self.pool.connection() as conn, conn.transaction():
            run = await run_status.start(conn, ref.run_id, ref.project_id, ref.by_reference)
            run = run or await load_run(conn, ref.run_id, ref.project_id)
        if run is None:
            raise ApplicationError(f"run {ref.run_id} not found", non_retryable=True)
        bind(thread_id=run.get("thread_id"))  # RunRef has no thread id; this attempt's log lines do
        if run["status"] in TERMINAL_RUN_STATUSES:
            return None
        limits = run.get("_limits", {})
        return RunPlan(
            model=run["model"],
            temperature=1.0 if run.get("temperature") is None else run["temperature"],
            top_p=1.0 if run.get("top_p") is None else run["top_p"],
            max_prompt_tokens=run.get("max_prompt_tokens"),
            max_completion_tokens=run.get("max_completion_tokens"),
            # By reference the generate activity reads these (user data) from the run's row.
            response_format="auto" if ref.by_reference else run.get("response_format") or "auto",
            tools=[] if ref.by_reference else run.get("tools") or [],
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
        system = await system_prompt(self.pool, run, inp.project_id)
        if system:
            messages.append(ChatMessage(role="system", content=system))
        history = [ChatMessage(role=r["data"]["role"], content=text_of(r["data"])) for r in rows]
        truncation, last = truncation_of(run)
        if last is not None:
            history = history[-last:]
        return Prompt(messages=messages + history, truncation=truncation, last_messages=last)

    @activity.defn(name="complete_step")
    async def complete_step(self, res: StepResult) -> None:
        """Runs before history-by-reference: the workflow hands over the model's output."""
        async with self.pool.connection() as conn, conn.transaction():
            events = await finish_turn_rows(conn, res)
            await append_events(conn, res.run_id, events)

    @activity.defn(name="require_action")
    async def require_action(self, inp: ToolCallsInput) -> None:
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [tool_call_object(c, in_step=False) for c in inp.tool_calls]
            },
        }
        async with self.pool.connection() as conn, conn.transaction():
            expires_at = now() + inp.expires_seconds
            await run_status.require_action(conn, inp.run_id, inp.project_id, required, expires_at)
        # After the commit, and on every attempt: emit is idempotent, and a crash between the commit
        # and here must not lose the announcement.
        if self.announcer:
            await self.announcer.emit(inp.run_id, inp.project_id, "requires_action")

    @activity.defn(name="record_tool_outputs")
    async def record_tool_outputs(self, inp: ToolOutputsInput) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            step = await (
                await conn.execute("SELECT data FROM run_steps WHERE id = %s", (inp.step_id,))
            ).fetchone()
            outputs = dict(inp.outputs)
            if inp.by_reference:  # the API stored them before it sent the update
                rows = await (
                    await conn.execute(
                        "SELECT call_id, output FROM run_tool_results WHERE run_id = %s AND step_id = %s"
                        " AND type = 'function'",
                        (inp.run_id, inp.step_id),
                    )
                ).fetchall()
                outputs = {r["call_id"]: r["output"] for r in rows}
            if step and step["data"]["status"] == "in_progress":
                details = step["data"]["step_details"]
                for call in details.get("tool_calls", []):
                    if call["id"] in outputs and call.get("type") == "function":
                        call["function"]["output"] = outputs[call["id"]]
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
            await run_status.resume(conn, inp.run_id, inp.project_id)

    @activity.defn(name="finish_run")
    async def finish_run(self, inp: FinishRunInput) -> None:
        await run_status.finish_run(self.pool, inp, self.announcer)
