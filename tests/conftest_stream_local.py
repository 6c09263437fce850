"""Local stand-in for the lead's conftest (not loaded by default): point tests/test_streaming.py at
a dev API and workers started by hand on private task queues.

    .venv/bin/python -m pytest -p tests.conftest_stream_local tests/test_streaming.py

Env: STREAM_DEV_DIR (default /tmp/stream: api.pid, inf.pid, env.sh), STREAM_DEV_API (default
http://127.0.0.1:18200). Like `assistants up`, it restarts the inference worker when it dies.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env_of(script: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"source {script} && env -0"], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@dataclass
class _Stack:
    dev_dir: Path
    api_url: str
    env: dict[str, str]
    keys: list[str]
    data_dir: Path = field(default_factory=lambda: Path("/tmp/stream"))

    @property
    def base_url(self) -> str:
        return self.api_url + "/v1"

    def create_key(self, project: str = "default") -> str:
        return self.keys[0] if project in ("default", "a") else self.keys[1]

    def pids(self) -> dict[str, int]:
        return {"worker-inference": int((self.dev_dir / "inf.pid").read_text())}

    def stack_info(self) -> dict[str, str]:
        return {"database_url": self.env["DATABASE_URL"], "temporal_address": self.env["TEMPORAL_ADDRESS"]}

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]


def _supervise(stack: _Stack, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        pid = stack.pids()["worker-inference"]
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                alive = f.read().split()[2] != "Z"
        except (OSError, IndexError):
            alive = False
        if not alive:
            log = open(stack.dev_dir / "inf.log", "ab")
            proc = subprocess.Popen(
                [str(ROOT / ".venv/bin/assistants"), "worker", "--queue", "inference"],
                env=stack.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
            (stack.dev_dir / "inf.pid").write_text(str(proc.pid))
            time.sleep(5)


@pytest.fixture(scope="session")
def stack():  # type: ignore[no-untyped-def]
    dev_dir = Path(os.environ.get("STREAM_DEV_DIR", "/tmp/stream"))
    handle = _Stack(
        dev_dir=dev_dir,
        api_url=os.environ.get("STREAM_DEV_API", "http://127.0.0.1:18200"),
        env={**os.environ, **_env_of(dev_dir / "env.sh")},
        keys=Path("/tmp/dev/keys").read_text().split(),
    )
    stop = threading.Event()
    threading.Thread(target=_supervise, args=(handle, stop), daemon=True).start()
    yield handle
    stop.set()


@pytest.fixture(scope="session")
def client(stack: _Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.keys[0], max_retries=0, timeout=120)
