"""Issue 17, point 5: `assistants runs list` and `assistants usage` read what the server recorded,
as the API reports it."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import openai
import pytest

from tests.stackutil import ASSISTANTS, StackHandle

pytestmark = pytest.mark.timeout(300)


def _cli(stack: StackHandle, *args: str, as_json: bool = True) -> Any:
    out = subprocess.run(
        [str(ASSISTANTS), *args, "--data-dir", str(stack.data_dir), *(["--json"] if as_json else [])],
        env=stack.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout) if as_json else out.stdout


def test_runs_list_and_usage_match_the_api(stack: StackHandle, model_name: str) -> None:
    project = f"ops-{uuid.uuid4().hex[:8]}"  # a project of its own: its usage is exactly these runs
    client = openai.OpenAI(
        base_url=stack.base_url, api_key=stack.create_key(project), max_retries=0, timeout=120
    )
    assistant = client.beta.assistants.create(model=model_name, instructions="Be brief.", temperature=0)
    runs = []
    for text in ("Say hi.", "Count to three."):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=8
        )
        assert run.status in ("completed", "incomplete"), run.last_error
        runs.append(client.beta.threads.runs.retrieve(run.id, thread_id=thread.id))

    listed = {r["id"]: r for r in _cli(stack, "runs", "list", "--project", project)}
    assert set(listed) == {r.id for r in runs}
    for r in runs:
        assert (listed[r.id]["status"], listed[r.id]["model"]) == (r.status, r.model)
        assert (listed[r.id]["thread_id"], listed[r.id]["project"]) == (r.thread_id, project)
        assert 0 <= listed[r.id]["age_seconds"] < 300

    table = _cli(stack, "runs", "list", "--project", project, as_json=False).splitlines()
    assert table[0].split() == ["ID", "STATUS", "MODEL", "PROJECT", "THREAD", "AGE"]
    assert sorted(line.split()[:5] for line in table[1:]) == sorted(
        [r.id, r.status, r.model, project, r.thread_id] for r in runs
    )

    # Filters: by status, and by age (both runs are younger than an hour).
    statuses = {r.status for r in runs}
    other = "failed" if "failed" not in statuses else "cancelled"
    assert _cli(stack, "runs", "list", "--project", project, "--status", other) == []
    by_status = _cli(
        stack, "runs", "list", "--project", project, *(a for s in statuses for a in ("--status", s))
    )
    assert {r["id"] for r in by_status} == {r.id for r in runs}
    assert _cli(stack, "runs", "list", "--project", project, "--older-than", "1h") == []
    # The project's id works as well as its name.
    project_id = listed[runs[0].id]["project_id"]
    assert {r["id"] for r in _cli(stack, "runs", "list", "--project", project_id)} == set(listed)

    usage = _cli(stack, "usage", "--project", project, "--days", "1")
    assert {(u["project"], u["model"]) for u in usage} == {(project, model_name)}
    assert sum(u["runs"] for u in usage) == len(runs)
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        expected = sum(getattr(r.usage, field) for r in runs if r.usage)
        assert sum(u[field] for u in usage) == expected > 0, field
    table = _cli(stack, "usage", "--project", project, as_json=False).splitlines()
    assert table[0].split()[:4] == ["DAY", "PROJECT", "MODEL", "RUNS"] and len(table) == 1 + len(usage)
