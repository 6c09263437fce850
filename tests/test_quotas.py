"""Per-project quotas and rate limits (issue 12 item 6) against a real stack with low limits, and a
second API replica on the same database: the counters are shared, not per process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import psycopg
import pytest

from tests.stackutil import ASSISTANTS, StackHandle, free_port, http_status, own_stack

pytestmark = pytest.mark.timeout(600)

RPM = 40
MAX_ACTIVE_RUNS = 1
MAX_STORED_BYTES = 100_000
LIMITS = {
    "ASSISTANTS_PROJECT_REQUESTS_PER_MINUTE": str(RPM),
    "ASSISTANTS_PROJECT_MAX_ACTIVE_RUNS": str(MAX_ACTIVE_RUNS),
    "ASSISTANTS_PROJECT_MAX_STORED_BYTES": str(MAX_STORED_BYTES),
}
MODEL = "smollm2-135m-instruct"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FORCE = {"type": "function", "function": {"name": "get_weather"}}


@pytest.fixture(scope="module")
def quota_stack() -> Iterator[StackHandle]:
    with own_stack("assistants-quotas-", env=LIMITS) as handle:
        yield handle


@pytest.fixture(scope="module")
def replica_url(quota_stack: StackHandle) -> Iterator[str]:
    """A second `assistants api` process on the stack's database and Temporal."""
    info = quota_stack.stack_info()
    port = free_port()
    env = dict(quota_stack.env, DATABASE_URL=info["database_url"], TEMPORAL_ADDRESS=info["temporal_address"])
    with (quota_stack.data_dir / "replica.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(ASSISTANTS), "api", "--port", str(port), "--host", "127.0.0.1"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while http_status(url + "/health") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "replica did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _seconds(duration: str) -> float:
    """OpenAI's reset format: `20ms`, `17s`, `6m0s`."""
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?|(\d+)ms", duration)
    assert m, duration
    if m.group(3):
        return int(m.group(3)) / 1000
    return int(m.group(1) or 0) * 60 + float(m.group(2) or 0)


def _project_of(stack: StackHandle, table: str, obj_id: str) -> str:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(f"SELECT project_id FROM {table} WHERE id = %s", (obj_id,)).fetchone()  # noqa: S608
    assert row is not None
    return str(row[0])


def _count(stack: StackHandle, query: str, *args: object) -> int:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(query, args).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def test_requests_per_minute_across_replicas(quota_stack: StackHandle, replica_url: str) -> None:
    key = quota_stack.create_key("rpm")
    auth = {"Authorization": f"Bearer {key}"}
    replicas = [quota_stack.api_url, replica_url]
    with httpx.Client(headers=auth, timeout=30) as http:
        first = http.get(replicas[0] + "/v1/assistants")
        if _seconds(first.headers["x-ratelimit-reset-requests"]) < 20:  # start a fresh minute
            time.sleep(_seconds(first.headers["x-ratelimit-reset-requests"]) + 1)
            first = http.get(replicas[0] + "/v1/assistants")
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert first.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
        # The rest of the minute's budget, alternating between the replicas (bodies included:
        # those are authenticated before they are read, and counted once).
        for i in range(1, RPM):
            url = replicas[i % 2]
            r = http.post(url + "/v1/threads", json={}) if i % 3 == 0 else http.get(url + "/v1/assistants")
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-remaining-requests"] == str(RPM - 1 - i)

        for url in replicas:
            over = http.get(url + "/v1/assistants")
            assert over.status_code == 429, over.text
            assert over.json()["error"]["type"] == "requests"
            assert over.json()["error"]["code"] == "rate_limit_exceeded"
            assert over.headers["x-ratelimit-limit-requests"] == str(RPM)
            assert over.headers["x-ratelimit-remaining-requests"] == "0"
            assert 0 < _seconds(over.headers["x-ratelimit-reset-requests"]) <= 60
            assert 1 <= int(over.headers["retry-after"]) <= 60
            posted = http.post(url + "/v1/threads", json={})
            assert posted.status_code == 429

    for url in replicas:
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.RateLimitError) as err:
            client.beta.assistants.list()
        assert err.value.code == "rate_limit_exceeded"
        assert err.value.type == "requests"
    # Another project has its own budget.
    other = openai.OpenAI(
        base_url=quota_stack.base_url, api_key=quota_stack.create_key("rpm-other"), max_retries=0
    )
    assert other.beta.assistants.list().data == []


def test_active_runs_quota(quota_stack: StackHandle) -> None:
    client = openai.OpenAI(
        base_url=quota_stack.base_url, api_key=quota_stack.create_key("runs"), max_retries=0
    )
    assistant = client.beta.assistants.create(model=MODEL, tools=TOOLS)  # type: ignore[arg-type]
    busy = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    # A forced tool call keeps the run active (requires_action) until it is answered or cancelled.
    first = client.beta.threads.runs.create(thread_id=busy.id, assistant_id=assistant.id, tool_choice=FORCE)  # type: ignore[arg-type]
    project = _project_of(quota_stack, "runs", first.id)
    idle = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    threads_before = _count(quota_stack, "SELECT count(*) FROM threads WHERE project_id = %s", project)

    with pytest.raises(openai.RateLimitError) as err:
        client.beta.threads.runs.create(thread_id=idle.id, assistant_id=assistant.id)
    assert err.value.code == "rate_limit_exceeded"
    assert int(err.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):
        client.beta.threads.create_and_run(assistant_id=assistant.id)
    assert client.beta.threads.runs.list(thread_id=idle.id).data == []
    assert _count(quota_stack, "SELECT count(*) FROM runs WHERE project_id = %s", project) == 1
    assert (
        _count(quota_stack, "SELECT count(*) FROM threads WHERE project_id = %s", project) == threads_before
    )

    # The slot frees when the run ends.
    client.beta.threads.runs.cancel(run_id=first.id, thread_id=busy.id)
    deadline = time.monotonic() + 60
    while client.beta.threads.runs.retrieve(run_id=first.id, thread_id=busy.id).status in (
        "queued", "in_progress", "requires_action", "cancelling",
    ):  # fmt: skip
        assert time.monotonic() < deadline, "run never left its active state"
        time.sleep(1)
    second = client.beta.threads.runs.create(thread_id=idle.id, assistant_id=assistant.id)
    client.beta.threads.runs.cancel(run_id=second.id, thread_id=idle.id)


def test_stored_bytes_quota(quota_stack: StackHandle) -> None:
    client = openai.OpenAI(
        base_url=quota_stack.base_url, api_key=quota_stack.create_key("storage"), max_retries=0
    )
    kept = client.files.create(file=("a.bin", b"a" * 60_000), purpose="assistants")
    project = _project_of(quota_stack, "files", kept.id)
    stored = quota_stack.data_dir / "files" / project

    with pytest.raises(openai.RateLimitError) as err:
        client.files.create(file=("b.bin", b"b" * 60_000), purpose="assistants")
    assert err.value.code == "insufficient_quota" and err.value.type == "insufficient_quota"
    assert err.value.response.headers["x-should-retry"] == "false"
    assert [f.id for f in client.files.list()] == [kept.id]
    assert sorted(p.name for p in stored.iterdir()) == [kept.id]

    exact = client.files.create(file=("c.bin", b"c" * (MAX_STORED_BYTES - 60_000)), purpose="assistants")
    with pytest.raises(openai.RateLimitError):  # nothing left: refused before storing
        client.files.create(file=("d.bin", b"d"), purpose="assistants")
    client.files.delete(kept.id)
    client.files.create(file=("e.bin", b"e" * 50_000), purpose="assistants")
    assert _count(
        quota_stack, "SELECT sum((data->>'bytes')::bigint) FROM files WHERE project_id = %s", project
    ) == (exact.bytes + 50_000)


def test_concurrent_uploads_cannot_overrun_the_quota(quota_stack: StackHandle) -> None:
    client = openai.OpenAI(
        base_url=quota_stack.base_url, api_key=quota_stack.create_key("storage-race"), max_retries=0
    )

    def upload(i: int) -> int:
        try:
            client.files.create(file=(f"{i}.bin", b"x" * 30_000), purpose="assistants")
            return 200
        except openai.RateLimitError:
            return 429

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(upload, range(8)))
    assert statuses.count(200) == MAX_STORED_BYTES // 30_000, statuses
    assert sum(f.bytes for f in client.files.list()) <= MAX_STORED_BYTES
