"""Records the committed workflow histories used by the replay tests.

Run it only when RunWorkflow changes on purpose (behind `workflow.patched`):
`.venv/bin/python tests/record_history.py`. Old files must be kept, new ones added.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from assistants.io import ToolOutputsInput  # noqa: E402
from tests.test_workflow_run import CALL, HISTORIES, TEXT, FakeRun, _run, _wait_for  # noqa: E402
from workflows.run import RunWorkflow  # noqa: E402


async def main() -> None:
    path = str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=path) as env:

        async def plain(handle):  # type: ignore[no-untyped-def]
            await handle.result()
            return await handle.fetch_history()

        history = await _run(env, FakeRun(turns=[TEXT]), plain)
        (HISTORIES / "run_plain_v1.json").write_text(history.to_json())

        fake = FakeRun(turns=[CALL, TEXT])

        async def tool(handle):  # type: ignore[no-untyped-def]
            await _wait_for(lambda: fake.required)
            await handle.execute_update(
                RunWorkflow.submit_tool_outputs,
                ToolOutputsInput(run_id="", project_id="", step_id="", outputs={"call_1": "18C"}),
            )
            await handle.result()
            return await handle.fetch_history()

        history = await _run(env, fake, tool)
        (HISTORIES / "run_tool_call_v1.json").write_text(history.to_json())

        # The same plain run, but with one recorded activity renamed: replay must reject it.
        data = json.loads((HISTORIES / "run_plain_v1.json").read_text())
        for event in data["events"]:
            attrs = event.get("activityTaskScheduledEventAttributes")
            if attrs and attrs["activityType"]["name"] == "build_prompt":
                attrs["activityType"]["name"] = "build_prompt_renamed"
                break
        (HISTORIES / "nondeterministic_run.json").write_text(json.dumps(data))


if __name__ == "__main__":
    asyncio.run(main())
