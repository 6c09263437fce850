"""The sandbox interface, modelled on E2B's code interpreter: run code, move files, kill.

Both backends (`local.LocalSandboxProvider`, `e2b.E2BSandboxProvider`) return these dataclasses,
so the code-interpreter activity never knows which one ran the code.
"""

from __future__ import annotations

import abc
import io
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

# Where the sandboxed code sees its files, as in OpenAI's and E2B's code interpreters.
WORK_DIR = "/mnt/data"


class SandboxError(Exception):
    """A sandbox operation failed (not the user's code: that is `Execution.error`)."""


class SandboxUnavailable(SandboxError):
    """No isolated sandbox can run here (e.g. bubblewrap missing or user namespaces disabled)."""


class SandboxDead(SandboxError):
    """The sandbox's kernel is gone (killed, crashed, expired); the session must recreate it."""


class SandboxBusy(SandboxError):
    """The worker holds as many sandboxes as it may and none is idle: try again later."""


@dataclass
class Result:
    """One rich output (Jupyter display_data / execute_result), keyed like E2B's `Result`."""

    text: str | None = None
    html: str | None = None
    markdown: str | None = None
    svg: str | None = None
    png: bytes | None = None
    jpeg: bytes | None = None
    pdf: bytes | None = None
    latex: str | None = None
    json: Any = None
    javascript: str | None = None
    is_main_result: bool = False  # True for the value of the cell's last expression
    extra: dict[str, Any] = field(default_factory=dict)  # other MIME types, as given

    def formats(self) -> list[str]:
        names = ("text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "json", "javascript")
        return [n for n in names if getattr(self, n) is not None] + list(self.extra)


@dataclass
class ExecutionError:
    name: str  # exception class, e.g. "ZeroDivisionError"; "TimeoutError" when the deadline passed
    value: str
    traceback: str = ""


@dataclass
class Execution:
    stdout: str = ""
    stderr: str = ""
    results: list[Result] = field(default_factory=list)
    error: ExecutionError | None = None
    execution_count: int | None = None


@dataclass(frozen=True)
class FileInfo:
    path: str  # absolute, under WORK_DIR
    size: int
    mtime: float  # seconds since the epoch


class Sandbox(abc.ABC):
    """One isolated interpreter whose state (variables, imports, files) persists across calls."""

    id: str

    @abc.abstractmethod
    # `timeout` mirrors E2B's run_code: the sandbox enforces it (interrupt, then kill), not the caller.
    async def run_code(self, code: str, timeout: float | None = None) -> Execution:  # noqa: ASYNC109
        """Run `code`; `timeout` (seconds, None = the provider's limit) bounds the wall clock."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes) -> str:
        """Write `data` at `path` (relative to, or absolute under, WORK_DIR); return the absolute path."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes: ...

    async def open_file(self, path: str) -> BinaryIO:
        """The file at `path` for reading in chunks; a backend that can stream overrides this."""
        return io.BytesIO(await self.read_file(path))

    @abc.abstractmethod
    async def list_files(self) -> list[FileInfo]:
        """Regular files under WORK_DIR, recursively (symlinks and special files are skipped)."""

    @abc.abstractmethod
    async def is_alive(self) -> bool: ...

    @abc.abstractmethod
    async def kill(self) -> None:
        """Stop the sandbox and release everything it holds. Idempotent."""

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


class SandboxProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    async def create(self) -> Sandbox:
        """A fresh sandbox with an empty WORK_DIR. Raises SandboxUnavailable when isolation is impossible."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release provider-wide resources."""


class FileSink(Protocol):
    """Stores a file the sandbox produced (the Files store, purpose "assistants_output")."""

    async def put(self, project_id: str, filename: str, data: bytes, purpose: str) -> str: ...


class FileSource(Protocol):
    """Loads a File by id to place it in WORK_DIR: returns (filename, content)."""

    async def get(self, file_id: str) -> tuple[str, bytes]: ...


def resolve_work_path(path: str) -> str:
    """Normalise `path` to a path relative to WORK_DIR; refuse anything that escapes it."""
    import posixpath

    p = path if path.startswith("/") else posixpath.join(WORK_DIR, path)
    p = posixpath.normpath(p)
    if not p.startswith(WORK_DIR + "/"):
        raise ValueError(f"path must be under {WORK_DIR}: {path!r}")
    return p[len(WORK_DIR) + 1 :]
