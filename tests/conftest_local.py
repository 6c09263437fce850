"""Local stand-in for the lead's conftest (not loaded by default): point the files/vector-store
tests at a dev API.  Use:  pytest -p tests.conftest_local tests/test_files.py

Env: FILES_DEV_API (default http://127.0.0.1:18100), FILES_DEV_KEYS (default /tmp/dev/keys: two keys,
two projects)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest


@dataclass
class _Stack:
    base_url: str
    api_url: str
    keys: list[str]

    def create_key(self, project: str) -> str:
        return self.keys[0] if project in ("a", "A") else self.keys[1]


@pytest.fixture(scope="session")
def stack() -> _Stack:
    base = os.environ.get("FILES_DEV_API", "http://127.0.0.1:18100")
    keys = Path(os.environ.get("FILES_DEV_KEYS", "/tmp/dev/keys")).read_text().split()
    return _Stack(base_url=base + "/v1", api_url=base, keys=keys)


@pytest.fixture(scope="session")
def client(stack: _Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.keys[0], max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def other_client(stack: _Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.keys[1], max_retries=0, timeout=120)
