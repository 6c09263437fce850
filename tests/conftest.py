"""Session fixtures: ONE real stack (`assistants up`: embedded Postgres, Temporal dev server,
worker processes, the real model, the API) shared by the end-to-end tests, and official `openai`
SDK clients for two projects. Modules that kill or restart the whole stack start their own."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import openai
import pytest

from tests import vllm_server
from tests.requires import missing
from tests.scripted_engine import ScriptedEngine
from tests.stackutil import StackHandle, own_stack

# The SDK marks the Assistants API deprecated; that is the API this server exists to serve.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="openai")
warnings.filterwarnings("ignore", message=".*Assistants API is deprecated.*")


# The session stack also serves REMOTE_MODEL: the bundled model on a real vLLM (`openai`
# provider, tests/test_providers.py). vLLM starts in the background as soon as the stack is up
# (it takes minutes on 2 cores); the `vllm` fixture waits for it.
REMOTE_MODEL = "smollm2-vllm"
REMOTE_MODEL_LONG = "smollm2-vllm-long"  # the same upstream, asked to ignore EOS (long answers)
VLLM_PORT = vllm_server.free_port()
_vllm: vllm_server.VllmServer | None = None
_wants_vllm = False  # any collected test uses the `vllm` fixture
# And SCRIPTED_MODEL: a scripted engine (tests/scripted_engine.py; it answers by rule, it runs no
# model) that calls the shell tool a client offers, for clients that never force a tool call (Codex).
SCRIPTED_MODEL = "scripted-codex"
SCRIPTED = ScriptedEngine()  # binds its port now; served from the `stack` fixture on


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    global _wants_vllm
    _wants_vllm = any("vllm" in getattr(item, "fixturenames", ()) for item in items)


def _providers() -> str:
    remote = {
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{VLLM_PORT}/v1",
        "model": REMOTE_MODEL,
        "capabilities": {
            "tools": True,
            "json_schema": True,
            "vision": False,
            "context_length": 4096,
            "reasoning_effort": True,  # tests/vllm_tool_chat_template.jinja renders it
        },
    }
    long = {**remote, "extra_body": {"ignore_eos": True}}
    scripted = {
        "provider": "openai",
        "base_url": SCRIPTED.base_url,
        "model": SCRIPTED_MODEL,
        "capabilities": {"tools": True, "json_schema": False, "vision": False, "context_length": 32768},
    }
    return json.dumps({REMOTE_MODEL: remote, REMOTE_MODEL_LONG: long, SCRIPTED_MODEL: scripted})


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    # The shared stack serves every test's requests as one project: the per-project request rate
    # limit is off here (tests/test_quotas.py checks it on a stack of its own), so a fast machine
    # running the fuzzer (~2000 requests a minute here) never turns it into 429s.
    global _vllm
    env = {"ASSISTANTS_PROJECT_REQUESTS_PER_MINUTE": "0", "ASSISTANTS_MODEL_PROVIDERS": _providers()}
    SCRIPTED.start()
    with own_stack("assistants-e2e-", env=env) as handle:
        if _wants_vllm and vllm_server.available():
            model_dir = handle.data_dir / "models" / "smollm2-135m-instruct"
            _vllm = vllm_server.VllmServer(
                model_dir, REMOTE_MODEL, VLLM_PORT, handle.data_dir / "logs" / "vllm.log"
            )
            _vllm.start()
        try:
            yield handle
        finally:
            if _vllm is not None:
                _vllm.stop()


@pytest.fixture(scope="session")
def vllm(stack: StackHandle) -> vllm_server.VllmServer:
    if _vllm is None:
        missing("vLLM is not installed (.vllm-venv): run scripts/setup_vllm.sh")
    _vllm.wait_ready(900)
    return _vllm


@pytest.fixture(scope="session")
def scripted_engine(stack: StackHandle) -> ScriptedEngine:
    """The engine behind SCRIPTED_MODEL; `.requests` holds every chat completions body it got."""
    return SCRIPTED


@pytest.fixture(scope="session")
def api_key(stack: StackHandle) -> str:
    return stack.create_key("default")


@pytest.fixture(scope="session")
def other_key(stack: StackHandle) -> str:
    return stack.create_key("other-project")


@pytest.fixture(scope="session")
def client(stack: StackHandle, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def other_client(stack: StackHandle, other_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=other_key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def model_name() -> str:
    return "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def assistant(client: openai.OpenAI, model_name: str):  # type: ignore[no-untyped-def]
    """A deterministic (greedy) assistant shared by tests that only read it."""
    return client.beta.assistants.create(
        model=model_name, name="e2e", instructions="You are a helpful assistant. Be brief.", temperature=0
    )
