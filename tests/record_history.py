"""Records the workflow histories that the replay tests replay, one file per path.

Run it after a change to RunWorkflow's logic (which goes behind `workflow.patched`, see README):
`.venv/bin/python tests/record_history.py VERSION`. Files are `run_<path>_<VERSION>.json`; an
existing file is never overwritten (the script refuses), so every history recorded by an earlier
version stays and keeps replaying in `make test`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from tests.workflow_scenarios import run_scenario, scenarios  # noqa: E402

HISTORIES = Path(__file__).parent / "histories"


async def main(version: str) -> None:
    path = str(Path(sys.executable).parent / "temporal-test-server")
    todo = {name: HISTORIES / f"run_{name}_{version}.json" for name in scenarios()}
    taken = [p.name for p in todo.values() if p.exists()]
    if taken:
        raise SystemExit(f"refusing to overwrite committed histories: {', '.join(taken)}; pick a new version")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path) as env:
        for name, (fake, body) in scenarios().items():
            history = await run_scenario(env, fake, body(fake))
            todo[name].write_text(history.to_json())
            sys.stderr.write(f"recorded {todo[name].name}\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: record_history.py VERSION   (e.g. v2)")
    asyncio.run(main(sys.argv[1]))
