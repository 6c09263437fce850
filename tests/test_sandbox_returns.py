"""What a code_interpreter call brings back out of its sandbox is bounded (issue 12, item 2):
against the real Postgres of the test stack and the real local sandbox, at the activity level
(the bundled model cannot be made to write given code; see tests/test_tools_exactly_once.py).

- Changed files become Files up to a count and a byte total per execution; the rest are named
  in the logs, not stored.
- Files are streamed from the sandbox to storage: storing a 48 MiB output does not hold it in
  the worker's memory.
- A cell that kills its sandbox (its memory limit) is reported once as `SandboxDied`, not
  retried into the same death; the thread's next call gets a fresh sandbox.
"""

# ruff: noqa: F811 - the fixtures imported from test_tools_exactly_once are used as arguments
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from activities.sandbox import SandboxLimits, SandboxSessions
from activities.sandbox import cgroup as cgroups
from activities.sandbox.local import LocalSandboxProvider
from activities.tools import ToolActivities
from assistants.db.pool import Pool
from assistants.settings import Settings
from assistants.storage.local import LocalStorage
from tests.requires import missing
from tests.test_tools_exactly_once import (  # noqa: F401 - fixtures among them
    _attempt,
    _one,
    _recorded,
    _run_files,
    _run_with_call,
    _thread,
    pool,
    provider,
    storage_root,
)

pytestmark = pytest.mark.timeout(240)

MiB = 1024**2


def _tools(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path, **settings: object
) -> ToolActivities:
    sessions = SandboxSessions(provider, idle_timeout=3600)
    return ToolActivities(pool, Settings(**settings), LocalStorage(storage_root), None, sessions)  # type: ignore[arg-type]


async def test_returned_files_are_capped_by_count_and_bytes(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    tools = _tools(pool, provider, storage_root, sandbox_returned_files=5, sandbox_returned_bytes=3 * MiB)
    try:
        project, thread = await _thread(pool)
        code = (
            "for i in range(40):\n    open(f'/mnt/data/small_{i:02}.txt', 'w').write(str(i))\n"
            "open('/mnt/data/a_big.bin', 'wb').write(b'x' * (4 * 1024**2))"
        )
        inp = await _run_with_call(pool, project, thread, code)
        [call] = inp.calls
        out = await _attempt(1).run(tools.run_builtin_tools, inp)
        files = await _run_files(pool, inp.run_id)
        assert [f["path"] for f in files] == [f"/mnt/data/small_{i:02}.txt" for i in range(5)]
        stored = await _one(pool, "SELECT count(*) FROM files WHERE id LIKE 'file-%%' AND id = ANY(%s)",
                            [f["file_id"] for f in files])  # fmt: skip
        assert stored == 5
        detail, _ = await _recorded(pool, call.id) or ({}, "")
        logs = detail["code_interpreter"]["outputs"][0]["logs"]
        assert "36 changed files not returned" in logs and "/mnt/data/a_big.bin" in logs
        assert "36 changed files not returned" in out.outputs[call.id]
    finally:
        await tools.sessions.aclose()


async def test_returned_files_are_streamed_not_held_in_memory(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    tools = _tools(pool, provider, storage_root)
    try:
        project, thread = await _thread(pool)
        code = "open('/mnt/data/big.bin', 'wb').write(b'y' * (48 * 1024**2))"
        inp = await _run_with_call(pool, project, thread, code)
        tracemalloc.start()
        try:
            await _attempt(1).run(tools.run_builtin_tools, inp)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        [f] = await _run_files(pool, inp.run_id)
        assert (storage_root / project / f["file_id"]).stat().st_size == 48 * MiB
        assert peak < 16 * MiB, f"storing a 48 MiB output peaked at {peak / MiB:.0f} MiB of Python memory"
    finally:
        await tools.sessions.aclose()


async def test_cell_that_kills_its_sandbox_is_reported_once(
    pool: Pool, provider: LocalSandboxProvider, storage_root: Path
) -> None:
    if not cgroups.probe()[0]:
        missing("no cgroup for sandboxes on this host")
    limits = SandboxLimits(memory_bytes=1024 * MiB, tmp_bytes=900 * MiB, timeout_seconds=60)
    small = LocalSandboxProvider(provider.cfg, limits)
    tools = _tools(pool, small, storage_root)
    try:
        project, thread = await _thread(pool)
        setup = await _run_with_call(pool, project, thread, "x = 1")
        await _attempt(1).run(tools.run_builtin_tools, setup)
        # 800 MiB in its tmpfs (memory no process's address space shows), then 300 MiB in the
        # kernel: the sandbox is past its 1 GiB and the OOM killer ends the kernel.
        code = (
            "for n in range(4):\n    with open(f'/dev/shm/fill{n}', 'wb') as f:\n"
            "        for _ in range(25): f.write(b'x' * (8 * 1024**2))\n"
            "b = bytearray(300 * 1024**2)\nfor i in range(0, len(b), 4096): b[i] = 1"
        )
        inp = await _run_with_call(pool, project, thread, code)
        [call] = inp.calls
        out = await _attempt(1).run(tools.run_builtin_tools, inp)
        assert "SandboxDied" in out.outputs[call.id] and "out of memory" in out.outputs[call.id]
        # The next call gets a sandbox rebuilt from the recorded cells, without the one that died.
        after = await _run_with_call(pool, project, thread, "print(x, 'chunks' in dir())")
        out = await _attempt(1).run(tools.run_builtin_tools, after)
        assert out.outputs[after.calls[0].id] == "1 False\n"
    finally:
        await tools.sessions.aclose()
