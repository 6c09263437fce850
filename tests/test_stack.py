"""`assistants up` with real processes: clean shutdown, worker restarts, state kept across restarts."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stackutil import StackHandle, http_status, start_stack

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: it is 0700 under /tmp/pytest-of-root, which postgres (as nobody) cannot reach.
    path = Path(tempfile.mkdtemp(prefix="assistants-stack-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stack(stack_dir: Path) -> Iterator[StackHandle]:
    handle = start_stack(stack_dir)
    yield handle
    handle.stop()


def _live_in_groups(pgids: set[int]) -> list[str]:
    """Live (non-zombie) processes whose process group is one of ``pgids``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) in pgids:
            out.append(f"{stat.parent.name} ({(stat.parent / 'cmdline').read_bytes()[:80]!r})")
    return out


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_killed_worker_is_restarted(stack: StackHandle) -> None:
    for role in ("worker-runs", "worker-inference"):
        old = stack.pids()[role]
        os.kill(old, signal.SIGKILL)
        _wait(lambda role=role, old=old: stack.pids().get(role, old) != old, 30, f"{role} to be restarted")
        new = stack.pids()[role]
        _wait(lambda new=new: _live_in_groups({new}) != [], 5, f"new {role} pid {new} to be alive")
    _wait(stack.healthy, 120, "/health to return 200 after the restarts")
    assert stack.stack_info()["pids"]["worker-runs"] == stack.pids()["worker-runs"]
    # Workers let torch's OpenMP threads sleep instead of spin (cli/main.py), restarted ones too.
    _wait(
        lambda: stack.log_tail(400).count("worker polling inference (OMP_WAIT_POLICY=PASSIVE)") >= 2,
        180,
        "the restarted inference worker to poll with OMP_WAIT_POLICY=PASSIVE",
    )


def test_sigterm_leaves_nothing_running_and_restart_keeps_data(stack_dir: Path) -> None:
    import openai

    first = start_stack(stack_dir)
    pids = first.pids()
    assert {"postgres", "temporal", "worker-runs", "worker-inference", "api"} <= set(pids), pids
    assert (stack_dir / "stack.json").stat().st_mode & 0o077 == 0, "stack.json holds the DB password: 0600"
    assert first.temporal_ui and http_status(first.temporal_ui) == 200
    key = first.create_key()
    client = openai.OpenAI(base_url=first.base_url, api_key=key, max_retries=0)
    assistant = client.beta.assistants.create(model="smollm2-135m-instruct", name="kept", temperature=0)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hi"}]},
        max_completion_tokens=4,
        poll_interval_ms=200,
    )
    # Greedy "Hi" needs more than 4 tokens: the budget ends it.
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    first.stop()

    # Every role is its own process group (postgres's postmaster too): nothing of any may survive.
    _wait(lambda: not _live_in_groups(set(pids.values())), 10, "the stack's processes to exit")
    assert not list((stack_dir / "pids").glob("*.pid"))
    assert http_status(first.api_url + "/health", timeout=2) == 0

    second = start_stack(stack_dir, port=first.port)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        assert http_status(second.base_url + "/models", auth) == 200
        assert http_status(second.base_url + "/models", {"Authorization": "Bearer sk-not-a-key"}) == 401
        assert client.beta.assistants.retrieve(assistant.id).name == "kept"
        again = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        assert again.status == run.status and again.usage == run.usage
        assert client.beta.threads.messages.list(run.thread_id, run_id=run.id).data
    finally:
        second.stop()
