"""Built-in tool calls take effect once, against the real Postgres of the test stack and the real
local sandbox (bubblewrap + ipykernel).

At the activity level: `run_builtin_tools` called again with the same input (what Temporal does
after a worker died before reporting completion) returns the recorded result and executes
nothing; a call executed but not recorded (the crash window) executes once more on a kernel
rebuilt from the recorded cells, under the same File ids. Two `SandboxSessions` (two runs
workers) sharing the database: a thread's kernel state follows it to the other worker. (At the
activity level, not through the SDK: the bundled 135M model cannot be made to write given code
such as `x = 41`; forced, it runs out of tokens or writes `set x = 41`.)"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from psycopg.types.json import Jsonb
from temporalio.testing import ActivityEnvironment

from activities.sandbox import SandboxLimits, SandboxSessions
from activities.sandbox.local import LocalConfig, LocalSandboxProvider, check_bwrap
from activities.tools import ToolActivities, output_file_id
from assistants.db.pool import Pool, open_pool
from assistants.ids import new_id
from assistants.payloads import BuiltinToolsInput, BuiltinToolsOutput, ToolCall
from assistants.settings import Settings
from assistants.storage.local import LocalStorage
from tests.requires import missing
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(240)

LIMITS = SandboxLimits(timeout_seconds=60, memory_bytes=2 * 1024**3)

# One visible effect per execution: a kernel counter, a line in a file, and a figure.
COUNTING_CELL = """\
try:
    counter += 1
except NameError:
    counter = 1
with open('/mnt/data/log.txt', 'a') as f:
    f.write(f'execution {counter}\\n')
import matplotlib.pyplot as plt
plt.plot([1, 2, 3]); plt.show()
print('counter', counter)
"""


@pytest_asyncio.fixture(loop_scope="session")
async def pool(stack: StackHandle) -> AsyncIterator[Pool]:
    stack.create_key("default")  # makes sure a project exists
    p = await open_pool(stack.database_url, max_size=4)
    yield p
    await p.close()


@pytest_asyncio.fixture(loop_scope="session")
async def provider() -> AsyncIterator[LocalSandboxProvider]:
    # Not under pytest's tmp_path: that is mode 0700 root, which the sandbox uid cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="assistants-once-test-"))
    cfg = LocalConfig(runtime=Settings().sandbox_runtime, work_root=root)
    reason = await check_bwrap(cfg)
    if reason:
        missing(f"local sandbox unusable: {reason}")
    yield LocalSandboxProvider(cfg, LIMITS)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def storage_root() -> Any:
    root = Path(tempfile.mkdtemp(prefix="assistants-once-files-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _tools(pool: Pool, provider: LocalSandboxProvider, storage_root: Path) -> ToolActivities:
    """What one runs worker builds: its own sandbox sessions, the shared database and storage."""
    sessions = SandboxSessions(provider, idle_timeout=3600)
    return ToolActivities(pool, Settings(), LocalStorage(storage_root), None, sessions)


async def _thread(pool: Pool) -> tuple[str, str]:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT id FROM projects LIMIT 1")).fetchone()
        assert row is not None
        project, thread = row["id"], new_id("thread")
        await conn.execute(
            "INSERT INTO threads (id, project_id, created_at, data) VALUES (%s, %s, 0, %s)",
            (thread, project, Jsonb({"id": thread, "object": "thread"})),
        )
    return project, thread


async def _run_with_call(pool: Pool, project: str, thread: str, code: str) -> BuiltinToolsInput:
    """A completed run row and its tool_calls step holding one code_interpreter call."""
    run, step, call = new_id("run"), new_id("step"), new_id("call")
    detail = {"id": call, "type": "code_interpreter", "code_interpreter": {"input": code, "outputs": []}}
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO runs (id, project_id, thread_id, assistant_id, status, created_at, data)"
            " VALUES (%s, %s, %s, 'asst_x', 'completed', 0, %s)",
            (run, project, thread, Jsonb({"id": run, "object": "thread.run"})),
        )
        await conn.execute(
            "INSERT INTO run_steps (id, project_id, thread_id, run_id, created_at, data) VALUES (%s, %s, %s, %s, 0, %s)",
            (step, project, thread, run, Jsonb({"id": step, "status": "in_progress",
             "step_details": {"type": "tool_calls", "tool_calls": [detail]}})),
        )  # fmt: skip
    return BuiltinToolsInput(
        run_id=run,
        project_id=project,
        thread_id=thread,
        step_id=step,
        calls=[ToolCall(id=call, type="code_interpreter", arguments=json.dumps({"code": code}))],
    )


async def _one(pool: Pool, sql: str, *args: Any) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql, args)).fetchone()
    return None if row is None else next(iter(row.values()))


async def _run_files(pool: Pool, run_id: str) -> list[dict[str, Any]]:
    return list(await _one(pool, "SELECT data->'_files' FROM runs WHERE id = %s", run_id) or [])


async def _recorded(pool: Pool, call_id: str) -> tuple[dict[str, Any], str] | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT detail, output FROM run_tool_results WHERE call_id = %s", (call_id,))
        ).fetchone()
    return None if row is None else (row["detail"], row["output"])


def _attempt(n: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=n)
    return env


async def _kernel_state(tools: ToolActivities, thread: str) -> str:
    sbx = await tools.sessions.get(thread)
    ex = await sbx.run_code("print(counter, repr(open('/mnt/data/log.txt').read()))")
    assert ex.error is None, ex.error
    return ex.stdout.strip()


async def test_retried_code_call_is_not_executed_again(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    tools = _tools(pool, provider, storage_root)
    try:
        project, thread = await _thread(pool)
        inp = await _run_with_call(pool, project, thread, COUNTING_CELL)
        [call] = inp.calls
        first = await _attempt(1).run(tools.run_builtin_tools, inp)
        assert "counter 1" in first.outputs[call.id] and "/mnt/data/log.txt" in first.outputs[call.id]
        detail, output = await _recorded(pool, call.id) or ({}, "")
        assert output == first.outputs[call.id]
        [logs, image] = detail["code_interpreter"]["outputs"]
        assert logs == {"type": "logs", "logs": "counter 1\n"}
        assert image["image"]["file_id"] == output_file_id(inp.run_id, call.id, 0)
        files_before = await _run_files(pool, inp.run_id)
        ids = {
            output_file_id(inp.run_id, call.id, 0),
            output_file_id(inp.run_id, call.id, "/mnt/data/log.txt"),
        }
        assert {f["file_id"] for f in files_before} == ids and len(files_before) == 2

        # Temporal retries the activity (same input, next attempt): the recorded result comes back.
        kernel = await tools.sessions.get(thread)
        second = await _attempt(2).run(tools.run_builtin_tools, inp)
        assert second.outputs == first.outputs
        assert await tools.sessions.get(thread) is kernel  # not rebuilt: nothing ran again
        assert await _kernel_state(tools, thread) == r"1 'execution 1\n'"  # executed once
        assert await _run_files(pool, inp.run_id) == files_before  # `_files` not duplicated
        for file_id in ids:
            assert await _one(pool, "SELECT count(*) FROM files WHERE id = %s", file_id) == 1
        step = await _one(pool, "SELECT data FROM run_steps WHERE id = %s", inp.step_id)
        assert step["status"] == "completed" and step["step_details"]["tool_calls"] == [detail]

        # The lead's workflow passes by_reference: the outputs stay in the table.
        by_ref = await _attempt(3).run(tools.run_builtin_tools, dataclasses.replace(inp, by_reference=True))
        assert by_ref == BuiltinToolsOutput()
        assert await _kernel_state(tools, thread) == r"1 'execution 1\n'"
    finally:
        await tools.sessions.aclose()


async def test_call_executed_but_not_recorded_runs_once_on_a_rebuilt_kernel(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    """The crash window: the cell ran, the worker died before its row was written. The retry
    must not add its effect to the live kernel a second time, nor a second set of Files."""
    tools = _tools(pool, provider, storage_root)
    try:
        project, thread = await _thread(pool)
        setup = await _run_with_call(pool, project, thread, "counter = 10")
        await _attempt(1).run(tools.run_builtin_tools, setup)
        inp = await _run_with_call(pool, project, thread, COUNTING_CELL)
        [call] = inp.calls
        first = await _attempt(1).run(tools.run_builtin_tools, inp)
        assert "counter 11" in first.outputs[call.id]
        files_before = await _run_files(pool, inp.run_id)
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM run_tool_results WHERE call_id = %s", (call.id,))
        again = await _attempt(2).run(tools.run_builtin_tools, inp)
        # The retry rebuilt the kernel from the recorded cell (counter = 10), then ran this one once.
        assert again.outputs == first.outputs
        assert await _kernel_state(tools, thread) == r"11 'execution 11\n'"
        assert await _run_files(pool, inp.run_id) == files_before
        assert {f["file_id"] for f in files_before} == {
            output_file_id(inp.run_id, call.id, 0),
            output_file_id(inp.run_id, call.id, "/mnt/data/log.txt"),
        }
        for f in files_before:
            assert await _one(pool, "SELECT count(*) FROM files WHERE id = %s", f["file_id"]) == 1
    finally:
        await tools.sessions.aclose()


async def test_kernel_state_follows_the_thread_to_another_worker(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    """Two runs workers (two SandboxSessions) over one database: run 2 lands on the worker that
    never saw the thread; its kernel is rebuilt from run 1's recorded cell."""
    worker_a = _tools(pool, provider, storage_root)
    worker_b = _tools(pool, provider, storage_root)
    try:
        project, thread = await _thread(pool)
        run1 = await _run_with_call(
            pool, project, thread, "x = 41\nopen('/mnt/data/made.txt', 'w').write('by run 1')"
        )
        out1 = await _attempt(1).run(worker_a.run_builtin_tools, run1)
        assert "made.txt" in out1.outputs[run1.calls[0].id]
        await worker_a.sessions.aclose()  # the worker that ran it is gone
        run2 = await _run_with_call(pool, project, thread, "print(x + 1, open('/mnt/data/made.txt').read())")
        out2 = await _attempt(1).run(worker_b.run_builtin_tools, run2)
        [call2] = run2.calls
        detail, _ = await _recorded(pool, call2.id) or ({}, "")
        assert detail["code_interpreter"]["outputs"] == [{"type": "logs", "logs": "42 by run 1\n"}]
        assert out2.outputs[call2.id] == "42 by run 1\n"  # the replayed cell's file is no new output
        # Replay records nothing and stores nothing.
        assert await _one(pool, "SELECT count(*) FROM run_tool_results WHERE thread_id = %s", thread) == 2
        assert await _run_files(pool, run2.run_id) == []
    finally:
        await worker_a.sessions.aclose()
        await worker_b.sessions.aclose()
