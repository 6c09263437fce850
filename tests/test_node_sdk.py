"""Issue 15: the official `openai` Node SDK (pinned in tests/node/package-lock.json, installed by
scripts/setup.sh) against the session stack: responses.create / retrieve, a streamed response,
conversations.create / items.list and an Assistants run (threads.create + runs.createAndPoll)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import openai
import pytest

from tests.requires import missing
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)

NODE_DIR = Path(__file__).parent / "node"


def test_node_sdk_responses_conversations_and_assistants(
    stack: StackHandle, api_key: str, client: openai.OpenAI, model_name: str
) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        missing("node or tests/node/node_modules (run scripts/setup.sh) is missing")
    env = {**os.environ, "OPENAI_BASE_URL": stack.base_url, "OPENAI_API_KEY": api_key, "MODEL": model_name}
    proc = subprocess.run(
        [node, "sdk_check.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    plain = out["plain"]
    assert plain["object"] == "response" and plain["id"].startswith("resp_")
    assert plain["status"] in ("completed", "incomplete") and plain["output_types"] == ["message"]
    assert plain["output_text"] and plain["retrieved_text"] == plain["output_text"]
    assert client.responses.retrieve(plain["id"]).output_text == plain["output_text"]

    stream = out["stream"]
    types = stream["types"]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] in ("response.completed", "response.incomplete"), types
    assert "response.output_text.delta" in types and "response.output_item.done" in types
    assert stream["sequence_numbers"] == list(range(len(types)))
    assert stream["deltas"] and stream["deltas"] == stream["final_text"]

    conv = out["conversation"]
    assert conv["object"] == "conversation" and conv["metadata"] == {"app": "node"}
    assert conv["response_status"] in ("completed", "incomplete") and conv["response_text"]
    roles = [i["role"] for i in conv["items"] if i["type"] == "message"]
    assert roles == ["user", "user", "assistant"], conv["items"]
    assert conv["items"][-1]["id"] == conv["response_message_id"]
    # A conversation is a thread: the Assistants API reads the same messages.
    thread_msgs = client.beta.threads.messages.list(thread_id=conv["id"], order="asc").data
    assert [m.id for m in thread_msgs] == [i["id"] for i in conv["items"]]

    assistants = out["assistants"]
    assert assistants["run_status"] in ("completed", "incomplete")
    assert assistants["roles"] == ["assistant", "user"] and assistants["text"]
