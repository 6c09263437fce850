"""Issue 25: the Vercel AI SDK (`ai` + `@ai-sdk/openai`, pinned in tests/node/package-lock.json,
installed by scripts/setup.sh) runs a tool loop against the session stack through the Responses
API (`createOpenAI({baseURL}).responses(model)`), unchanged: generateText and streamText, each
with one tool, `stopWhen: stepCountIs(3)`. The bundled model never calls a tool by itself, so
step 0 forces it (`prepareStep` -> toolChoice); step 1 re-sends the history with the call and its
result and must answer in text. tests/node/ai_sdk_check.mjs runs both and prints one JSON line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.requires import missing
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)

NODE_DIR = Path(__file__).parent / "node"


def check_loop(run: dict[str, Any], weather: str, client: openai.OpenAI) -> None:
    assert run["error"] is None, run["error"]
    steps = run["steps"]
    assert len(steps) >= 2, steps
    # Step 0: the forced call, executed by the SDK with the arguments it parsed.
    assert [c["name"] for c in steps[0]["tool_calls"]] == ["get_weather"], steps[0]
    assert steps[0]["finish_reason"] == "tool-calls" and steps[0]["tool_results"] == [weather]
    assert len(run["executed"]) == 1 and isinstance(run["executed"][0].get("city"), str), run["executed"]
    # Step 1 sent the history back: the function_call and its function_call_output (or, with
    # store on, an item_reference to the stored call) and answered in text.
    sent = steps[1]["request_body"]["input"]
    kinds = [i.get("type", "message") for i in sent]
    assert "function_call_output" in kinds, kinds
    assert "function_call" in kinds or "item_reference" in kinds, kinds
    output = next(i for i in sent if i.get("type") == "function_call_output")
    assert weather in output["output"], output
    assert steps[-1]["tool_calls"] == [] and steps[-1]["text"].strip(), steps[-1]
    assert run["text"] == steps[-1]["text"]
    # The server stored that last response with the same text.
    stored = client.responses.retrieve(steps[-1]["response_id"])
    assert stored.status in ("completed", "incomplete") and stored.output_text == run["text"]


def test_vercel_ai_sdk_tool_loop(
    stack: StackHandle, api_key: str, client: openai.OpenAI, model_name: str
) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@ai-sdk" / "openai" / "package.json").exists():
        missing("node or tests/node/node_modules (run scripts/setup.sh) is missing")
    env = {**os.environ, "OPENAI_BASE_URL": stack.base_url, "OPENAI_API_KEY": api_key, "MODEL": model_name}
    proc = subprocess.run(
        [node, "ai_sdk_check.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    check_loop(out["generate"], out["weather"], client)
    check_loop(out["stream"], out["weather"], client)
    parts = out["stream"]["part_types"]
    assert {"tool-call", "tool-result", "text-delta", "finish"} <= set(parts), parts
