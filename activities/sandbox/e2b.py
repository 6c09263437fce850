"""The E2B backend: the same `Sandbox` interface over E2B's cloud code interpreter (`AsyncSandbox`).

Used when E2B_API_KEY is set. E2B runs each sandbox in its own microVM; we ask for no internet
access (as OpenAI's code interpreter has none) and keep the VM alive as long as our session.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from activities.sandbox.base import (
    WORK_DIR,
    Execution,
    ExecutionError,
    FileInfo,
    Result,
    Sandbox,
    SandboxDead,
    SandboxError,
    SandboxProvider,
    resolve_work_path,
)
from activities.sandbox.limits import SandboxLimits

log = logging.getLogger(__name__)

# How deep list_files looks under /mnt/data.
LIST_DEPTH = 16
# E2B keeps a VM alive this long past its last use; our session reaper normally kills it first.
LIFETIME_MARGIN_SECONDS = 300
_RESULT_FIELDS = ("text", "html", "markdown", "svg", "latex", "javascript")
_BINARY_FIELDS = ("png", "jpeg", "pdf")  # base64 strings in E2B's results


class E2BSandboxProvider(SandboxProvider):
    name = "e2b"

    def __init__(
        self,
        api_key: str,
        limits: SandboxLimits,
        *,
        idle_timeout: float = 3600.0,
        template: str | None = None,
        allow_internet_access: bool = False,
    ) -> None:
        self.api_key = api_key
        self.limits = limits
        self.lifetime = int(idle_timeout) + LIFETIME_MARGIN_SECONDS
        self.template = template
        self.allow_internet_access = allow_internet_access

    async def create(self) -> E2BSandbox:
        from e2b_code_interpreter import AsyncSandbox

        try:
            sbx = await AsyncSandbox.create(
                template=self.template,
                timeout=self.lifetime,
                api_key=self.api_key,
                allow_internet_access=self.allow_internet_access,
            )
        except Exception as e:  # the SDK raises many types; none of them is the user's fault
            raise SandboxError(f"E2B sandbox could not be created: {e}") from e
        # E2B's interpreter starts in /home/user; ours promise /mnt/data like OpenAI's.
        await sbx.files.make_dir(WORK_DIR)
        await sbx.run_code(f"import os; os.chdir({WORK_DIR!r})")
        return E2BSandbox(sbx, self.limits, self.lifetime)


class E2BSandbox(Sandbox):
    def __init__(self, sbx: Any, limits: SandboxLimits, lifetime: int) -> None:
        self._sbx = sbx
        self.limits = limits
        self.lifetime = lifetime
        self.id = f"e2b_{sbx.sandbox_id}"
        self._killed = False

    async def run_code(self, code: str, timeout: float | None = None) -> Execution:  # noqa: ASYNC109
        from e2b import SandboxNotFoundException, SandboxNotRunningException, TimeoutException

        timeout = self.limits.timeout_seconds if timeout is None else timeout
        try:
            ex = await self._sbx.run_code(code, timeout=timeout)
        except (SandboxNotFoundException, SandboxNotRunningException) as e:
            raise SandboxDead(f"E2B sandbox {self.id} is gone: {e}") from e
        except TimeoutException as e:
            if not await self.is_alive():
                raise SandboxDead(f"E2B sandbox {self.id} is gone: {e}") from e
            return Execution(
                error=ExecutionError(
                    "TimeoutError", f"Execution exceeded the time limit of {timeout:g} seconds."
                )
            )
        await self._extend()
        return _execution(ex, self.limits.output_bytes)

    async def _extend(self) -> None:
        """Push the VM's own expiry past our idle timeout; best effort."""
        try:
            await self._sbx.set_timeout(self.lifetime)
        except Exception as e:  # noqa: BLE001 - a failed extension only shortens the VM's life
            log.warning("e2b: set_timeout failed for %s: %s", self.id, e)

    async def write_file(self, path: str, data: bytes) -> str:
        full = f"{WORK_DIR}/{resolve_work_path(path)}"
        await self._sbx.files.write(full, data)
        return full

    async def read_file(self, path: str) -> bytes:
        from e2b import NotFoundException

        full = f"{WORK_DIR}/{resolve_work_path(path)}"
        try:
            return bytes(await self._sbx.files.read(full, format="bytes"))
        except NotFoundException as e:
            raise FileNotFoundError(full) from e

    async def list_files(self) -> list[FileInfo]:
        from e2b import FileType

        entries = await self._sbx.files.list(WORK_DIR, depth=LIST_DEPTH)
        out = [
            FileInfo(path=e.path, size=e.size, mtime=e.modified_time.timestamp())
            for e in entries
            if e.type == FileType.FILE and not e.symlink_target and e.path.startswith(WORK_DIR + "/")
        ]
        return sorted(out, key=lambda f: f.path)

    async def is_alive(self) -> bool:
        if self._killed:
            return False
        try:
            return bool(await self._sbx.is_running())
        except Exception:  # noqa: BLE001 - unreachable counts as gone; the session recreates it
            return False

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            await self._sbx.kill()
        except Exception as e:  # noqa: BLE001 - it expires on its own anyway
            log.warning("e2b: kill failed for %s: %s", self.id, e)


def _execution(ex: Any, cap: int) -> Execution:
    err = None
    if ex.error is not None:
        err = ExecutionError(name=ex.error.name, value=ex.error.value, traceback=ex.error.traceback or "")
    return Execution(
        stdout=_cap("".join(ex.logs.stdout), cap),
        stderr=_cap("".join(ex.logs.stderr), cap),
        results=[_result(r) for r in ex.results],
        error=err,
        execution_count=ex.execution_count,
    )


def _result(r: Any) -> Result:
    out = Result(is_main_result=bool(r.is_main_result), json=r.json, extra=dict(r.extra or {}))
    for name in _RESULT_FIELDS:
        setattr(out, name, getattr(r, name))
    for name in _BINARY_FIELDS:
        value = getattr(r, name)
        if value is not None:
            try:
                setattr(out, name, base64.b64decode(value))
            except (binascii.Error, ValueError):
                out.extra[name] = value
    return out


def _cap(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + "\n[output truncated]\n"
