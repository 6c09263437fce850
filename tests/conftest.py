"""Session fixtures: ONE real stack (`assistants up`: embedded Postgres, Temporal dev server,
worker processes, the real model, the API) shared by the end-to-end tests, and official `openai`
SDK clients for two projects. Modules that kill or restart the whole stack start their own."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import openai
import pytest

from tests.stackutil import StackHandle, own_stack

# The SDK marks the Assistants API deprecated; that is the API this server exists to serve.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="openai")
warnings.filterwarnings("ignore", message=".*Assistants API is deprecated.*")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    # The shared stack serves every test's requests as one project: the per-project request rate
    # limit is off here (tests/test_quotas.py checks it on a stack of its own), so a fast machine
    # running the fuzzer (~2000 requests a minute here) never turns it into 429s.
    with own_stack("assistants-e2e-", env={"ASSISTANTS_PROJECT_REQUESTS_PER_MINUTE": "0"}) as handle:
        yield handle


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
