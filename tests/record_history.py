"""Records the workflow histories that the replay tests replay, one file per path.

Run it after a change to a workflow's logic (which goes behind `workflow.patched`, see README):
`.venv/bin/python tests/record_history.py VERSION [FAMILY ...]`. FAMILY names the workflows whose
paths to record: `run` (RunWorkflow, the default; tests/workflow_scenarios.py), `ingest`, `search`,
`input_tokens`, `webhook`, `reconcile` (tests/workflow_scenarios_others.py). Files are
`<family>_<path>_<VERSION>.json`; an existing file is never overwritten (the script refuses), so
every history recorded by an earlier version stays and keeps replaying in `make test`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from tests.workflow_scenarios import run_scenario, scenarios  # noqa: E402
from tests.workflow_scenarios_others import WorkflowPath, paths, run_path, temporal_binary  # noqa: E402

HISTORIES = Path(__file__).parent / "histories"
FAMILIES = ("run", "ingest", "search", "input_tokens", "webhook", "reconcile")


def recorders(families: list[str]) -> dict[str, Callable[[], Awaitable[WorkflowHistory]]]:
    """History file stem (without the version) -> what records that path's history."""
    todo: dict[str, Callable[[], Awaitable[WorkflowHistory]]] = {}
    if "run" in families:
        for name in scenarios():
            todo[f"run_{name}"] = partial(_record_run, name)
    for name, path in paths().items():
        if any(name.startswith(f"{family}_") for family in families if family != "run"):
            todo[name] = partial(_record_other, path)
    return todo


async def _record_run(name: str) -> WorkflowHistory:
    """In a test server of its own, as run_path does for the other workflows."""
    fake, body = scenarios()[name]
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    ) as env:
        history: WorkflowHistory = await run_scenario(env, fake, body(fake))
        return history


async def _record_other(path: WorkflowPath) -> WorkflowHistory:
    return (await run_path(path)).history


async def main(version: str, families: list[str]) -> None:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"unknown workflow family {unknown[0]!r}; one of {', '.join(FAMILIES)}")
    todo = recorders(families)
    files = {stem: HISTORIES / f"{stem}_{version}.json" for stem in todo}
    taken = [p.name for p in files.values() if p.exists()]
    if taken:
        raise SystemExit(f"refusing to overwrite committed histories: {', '.join(taken)}; pick a new version")
    # The scripted failures would each log a warning with a traceback.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    for stem, record in todo.items():
        history = await record()
        files[stem].write_text(history.to_json())
        sys.stderr.write(f"recorded {files[stem].name}\n")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(
            f"usage: record_history.py VERSION [FAMILY ...]   (e.g. v2; FAMILY: {', '.join(FAMILIES)})"
        )
    asyncio.run(main(sys.argv[1], sys.argv[2:] or ["run"]))
