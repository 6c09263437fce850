"""Run the real stack (`assistants up`) for tests: start, wait for /health, stop."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from temporalio.client import Client

from assistants.settings import Settings
from assistants.temporal_client import connect_temporal

ROOT = Path(__file__).resolve().parents[1]
ASSISTANTS = ROOT / ".venv" / "bin" / "assistants"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=timeout
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class StackHandle:
    def __init__(self, data_dir: Path, port: int, proc: subprocess.Popen[bytes], env: dict[str, str]):
        self.data_dir, self.port, self.proc, self.env = data_dir, port, proc, env
        self.api_url = f"http://127.0.0.1:{port}"
        self.base_url = self.api_url + "/v1"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "up.log"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stack_info(self) -> dict:
        return json.loads((self.data_dir / "stack.json").read_text())

    @property
    def temporal_ui(self) -> str | None:
        return self.stack_info().get("temporal_ui")

    @property
    def database_url(self) -> str:
        return str(self.stack_info()["database_url"])

    def settings(self) -> Settings:
        """Settings of this stack's processes, as far as a client needs them (its keys, its Temporal)."""
        return Settings(
            data_dir=self.data_dir,
            temporal_address=self.stack_info()["temporal_address"],
            payload_key=self.env.get("ASSISTANTS_PAYLOAD_KEY"),
            payload_old_keys=self.env.get("ASSISTANTS_PAYLOAD_OLD_KEYS", ""),
            operator_token=self.env.get("ASSISTANTS_OPERATOR_TOKEN"),
        )

    async def temporal(self, namespace: str | None = None) -> Client:
        """A client of this stack's Temporal with its payload codec (as every process connects)."""
        return await connect_temporal(self.settings(), namespace=namespace)

    def pids(self) -> dict[str, int]:
        """role -> pid from DATA/pids/*.pid (postgres, temporal, worker-runs, worker-inference, api)."""
        out = {}
        for f in (self.data_dir / "pids").glob("*.pid"):
            try:
                out[f.stem] = int(f.read_text().strip())
            except (OSError, ValueError):
                continue
        return out

    def healthy(self) -> bool:
        return http_status(self.api_url + "/health", timeout=2) == 200

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`assistants up` exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.5)
        raise TimeoutError(f"stack not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def create_key(self, project: str = "default") -> str:
        out = subprocess.run(
            [str(ASSISTANTS), "keys", "create", "--data-dir", str(self.data_dir), "--project", project],
            env=self.env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM `assistants up`, wait for it, and assert it exited cleanly."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(
                    f"`assistants up` ignored SIGTERM for {timeout}s:\n{self.log_tail()}"
                ) from None
        assert self.proc.returncode == 0, (
            f"`assistants up` exited with {self.proc.returncode}:\n{self.log_tail()}"
        )
        return self.proc.returncode


def share_prepared_models(data_dir: Path, source: Path = ROOT / ".data" / "models") -> None:
    """Symlink models that `make setup` already prepared, so each test stack skips the ~1.5 min conversion."""
    if not source.is_dir():
        return
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    for model in source.iterdir():
        target = data_dir / "models" / model.name
        # `.prepared` is what activities.llm.prepare writes last; half-converted folders are skipped.
        if not model.name.startswith(".") and (model / ".prepared").exists() and not target.exists():
            target.symlink_to(model, target_is_directory=True)


def start_stack(
    data_dir: Path, port: int | None = None, env: dict[str, str] | None = None, timeout: float = 180
) -> StackHandle:
    """Launch `assistants up --data-dir DATA --port PORT` in its own process group; wait for /health."""
    data_dir.mkdir(parents=True, exist_ok=True)
    share_prepared_models(data_dir)
    port = port or free_port()
    full_env = dict(os.environ)
    # The stack must be self-contained: never inherit connections to some other database/cluster.
    for name in (
        "DATABASE_URL",
        "TEMPORAL_ADDRESS",
        "ASSISTANTS_DATABASE_URL",
        "ASSISTANTS_TEMPORAL_ADDRESS",
    ):
        full_env.pop(name, None)
    full_env.setdefault("ASSISTANTS_TEMPORAL_UI_PORT", "0")  # tests run in parallel with a dev's `make up`
    # Tests and benchmarks ask for short answers (CPU time); OpenAI's minimum of 256 is tested
    # in tests/test_request_limits.py on a stack that keeps the default.
    full_env.setdefault("ASSISTANTS_MIN_COMPLETION_TOKENS", "1")
    full_env.update(env or {})
    with (data_dir / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(ASSISTANTS), "up", "--data-dir", str(data_dir), "--port", str(port)],
            env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    handle = StackHandle(data_dir, port, proc, full_env)
    try:
        handle.wait_healthy(timeout)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    return handle


@contextlib.contextmanager
def own_stack(prefix: str, env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[StackHandle]:
    """A fresh stack in a temp dir, stopped and removed at the end. Not pytest's tmp_path: it is
    0700, and Postgres runs as an unprivileged user that must reach the data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    data_dir.chmod(0o755)
    handle = start_stack(data_dir, env=env, timeout=timeout)
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
