"""Issue 25: the Codex CLI (`@openai/codex`, pinned in tests/node/package-lock.json, installed by
scripts/setup.sh) runs turns against the session stack as a custom Responses provider,
unchanged: `codex exec --json` with a throwaway CODEX_HOME whose config.toml points
`[model_providers.local]` at the stack (`wire_api = "responses"`).

Codex never sends `tool_choice`, and the bundled SmolLM2 never calls a tool unforced, so the tool
turn runs on `scripted-codex`: a SCRIPTED model, not a real one (tests/scripted_engine.py behind
the `openai` provider, registered in tests/conftest.py). Asked by the user, it calls Codex's shell
tool with `echo scripted-$((6*7))`; given the tool's result, it answers `scripted-done: <result>`.
So the test checks the plumbing a real model would need: Codex's tools reach the model, Codex
executes the call it gets back, and its follow-up request brings the output as a `tool` message.
A plain text turn runs on the real bundled model, with two optional tool sets (multi-agent,
goals) switched off: Codex's full default prompt is ~9,100 tokens, over SmolLM2's 8,192."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SCRIPTED_MODEL
from tests.requires import missing
from tests.scripted_engine import SHELL_OUTPUT, ScriptedEngine
from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(420)

CODEX = Path(__file__).parent / "node" / "node_modules" / ".bin" / "codex"
KEY_ENV = "ASSISTANTS_TEST_KEY"


def run_codex(
    stack: StackHandle, api_key: str, model: str, prompt: str, tmp: Path, *flags: str
) -> list[dict[str, Any]]:
    """One `codex exec --json` turn in a throwaway CODEX_HOME; returns its JSON events."""
    if not CODEX.exists():
        missing("tests/node/node_modules/.bin/codex is missing (run scripts/setup.sh)")
    home, work, tmpdir = tmp / "codex-home", tmp / "work", tmp / "tmp"
    for d in (home, work, tmpdir):
        d.mkdir()
    # Retries off: Codex would otherwise retry a failed request with backoff for minutes.
    (home / "config.toml").write_text(
        f'model_provider = "local"\nmodel = "{model}"\ncheck_for_update_on_startup = false\n\n'
        f'[model_providers.local]\nname = "assistants-server"\nbase_url = "{stack.base_url}"\n'
        f'env_key = "{KEY_ENV}"\nwire_api = "responses"\nrequest_max_retries = 0\nstream_max_retries = 0\n'
    )
    # Codex links its sandbox helper (codex-linux-sandbox) into CODEX_HOME, and refuses to when
    # CODEX_HOME lies under the temp dir: then every sandboxed command fails. A TMPDIR of its own
    # keeps pytest's tmp_path usable.
    env = {**os.environ, "CODEX_HOME": str(home), "TMPDIR": str(tmpdir), KEY_ENV: api_key}
    cmd = [str(CODEX), "exec", "--skip-git-repo-check", "-s", "read-only", "-c", "approval_policy=never", "--json", *flags, prompt]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"codex exec did not finish in 300 s; stdout:\n{(e.stdout or b'')[-4000:]!r}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["type"] in ("turn.failed", "error")]
    assert proc.returncode == 0 and "turn.completed" in [e["type"] for e in events], (
        f"codex exec rc={proc.returncode}; failures: {failed}\nstderr: {proc.stderr[-3000:]}"
    )
    assert not failed, failed
    return events


def completed(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


def test_codex_cli_runs_scripted_shell_call(
    stack: StackHandle, api_key: str, scripted_engine: ScriptedEngine, tmp_path: Path
) -> None:
    seen = len(scripted_engine.requests)
    events = run_codex(stack, api_key, SCRIPTED_MODEL, "Run the scripted command.", tmp_path)

    # Codex executed the scripted call: only a shell turns `$((6*7))` into 42.
    commands = completed(events, "command_execution")
    assert any(SHELL_OUTPUT in (c.get("aggregated_output") or "") for c in commands), commands
    assert all(c.get("exit_code") == 0 for c in commands), commands
    # ...and the turn went on to the model's final text, which quotes the tool's output.
    messages = completed(events, "agent_message")
    assert messages and messages[-1]["text"].startswith("scripted-done:"), messages
    assert SHELL_OUTPUT in messages[-1]["text"], messages

    # What reached the model: first the user's turn with Codex's tools, then the tool result as a
    # `tool` message answering the assistant's call.
    reqs = scripted_engine.requests[seen:]
    assert len(reqs) == 2, [r["messages"][-1] for r in reqs]
    first, follow_up = reqs
    assert first["messages"][-1]["role"] == "user" and first.get("tools"), first["messages"][-1]
    call_msg, tool_msg = follow_up["messages"][-2:]
    assert call_msg["role"] == "assistant" and len(call_msg.get("tool_calls") or []) == 1, call_msg
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == call_msg["tool_calls"][0]["id"], (
        tool_msg
    )
    assert SHELL_OUTPUT in json.dumps(tool_msg["content"]), tool_msg


def test_codex_cli_plain_turn_on_bundled_model(
    stack: StackHandle, api_key: str, model_name: str, tmp_path: Path
) -> None:
    # Codex as shipped, less two optional tool sets, so that its prompt fits the model's window.
    flags = ("--disable", "multi_agent", "--disable", "goals")
    events = run_codex(stack, api_key, model_name, "Say hello in one short sentence.", tmp_path, *flags)
    messages = completed(events, "agent_message")
    assert messages and messages[-1]["text"].strip(), events
    assert not completed(events, "command_execution"), events
