"""The E2B backend's mapping onto our `Sandbox` interface.

FAKED: only E2B's cloud, which is unreachable from here. `AsyncSandbox.create` is monkeypatched
to return `FakeCloudSandbox`, an object with the SDK's method names that answers with the SDK's
own model classes (`Execution`, `Logs`, `Result`, `ExecutionError`, `EntryInfo`) and raises the
SDK's own exceptions. Everything on our side of the SDK runs for real.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from e2b import EntryInfo, FileType, NotFoundException, SandboxNotFoundException, TimeoutException
from e2b_code_interpreter import AsyncSandbox
from e2b_code_interpreter.models import Execution, ExecutionError, Logs, Result

from activities.sandbox import SandboxDead, SandboxLimits, provider_from_settings
from activities.sandbox.e2b import E2BSandbox, E2BSandboxProvider
from assistants.settings import Settings

pytestmark = pytest.mark.timeout(30)

PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"
MTIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def entry(path: str, kind: FileType, size: int = 0, link: str | None = None) -> EntryInfo:
    return EntryInfo(
        name=path.rsplit("/", 1)[-1],
        type=kind,
        path=path,
        metadata=None,
        size=size,
        mode=0o644,
        permissions="rw-r--r--",
        owner="user",
        group="user",
        modified_time=MTIME,
        symlink_target=link,
    )


class FakeFiles:
    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}
        self.dirs: list[str] = []

    async def make_dir(self, path, **kw):
        self.dirs.append(path)
        return True

    async def write(self, path, data, **kw):
        self.store[path] = bytes(data)
        return SimpleNamespace(path=path)

    async def read(self, path, format="text", **kw):
        if path not in self.store:
            raise NotFoundException(f"file {path} not found")
        assert format == "bytes"
        return bytearray(self.store[path])

    async def list(self, path, depth=1, **kw):
        assert path == "/mnt/data" and depth > 1
        files = [entry(p, FileType.FILE, len(d)) for p, d in self.store.items()]
        return files + [
            entry("/mnt/data/sub", FileType.DIR),
            entry("/mnt/data/ln", FileType.FILE, 4, link="/etc/passwd"),
        ]


class FakeCloudSandbox:
    """Stands in for the cloud VM behind `AsyncSandbox`, with the SDK's method names."""

    def __init__(self, **create_kwargs) -> None:
        self.create_kwargs = create_kwargs
        self.sandbox_id = "iabc123"
        self.files = FakeFiles()
        self.codes: list[tuple[str, float | None]] = []
        self.next: Execution | Exception | None = None
        self.running = True
        self.kills = 0
        self.timeouts: list[int] = []

    async def run_code(self, code, timeout=None, **kw):  # noqa: ASYNC109
        if not self.running:
            raise SandboxNotFoundException("sandbox not found")
        self.codes.append((code, timeout))
        nxt, self.next = self.next, None
        if isinstance(nxt, Exception):
            raise nxt
        return nxt or Execution()

    async def set_timeout(self, timeout, **kw):  # noqa: ASYNC109
        self.timeouts.append(timeout)

    async def is_running(self, **kw):
        return self.running

    async def kill(self, **kw):
        self.kills += 1
        self.running = False
        return True


@pytest.fixture
def cloud(monkeypatch):
    made: list[FakeCloudSandbox] = []

    async def fake_create(cls=None, **kwargs):
        made.append(FakeCloudSandbox(**kwargs))
        return made[-1]

    monkeypatch.setattr(AsyncSandbox, "create", fake_create)
    return made


@pytest.fixture
def limits():
    return SandboxLimits(timeout_seconds=30, output_bytes=100)


async def test_settings_pick_e2b_when_key_set(monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_test")
    assert isinstance(provider_from_settings(Settings()), E2BSandboxProvider)
    monkeypatch.delenv("E2B_API_KEY")
    assert provider_from_settings(Settings()).name == "local"


async def test_create_asks_for_no_internet_and_a_work_dir(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits, idle_timeout=600).create()
    (fake,) = cloud
    assert isinstance(sbx, E2BSandbox) and sbx.id == "e2b_iabc123"
    assert fake.create_kwargs["api_key"] == "key" and fake.create_kwargs["allow_internet_access"] is False
    assert fake.create_kwargs["timeout"] == 900  # idle timeout + margin: our reaper kills it first
    assert fake.files.dirs == ["/mnt/data"] and "os.chdir('/mnt/data')" in fake.codes[0][0]


async def test_run_code_maps_logs_results_and_errors(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits).create()
    fake = cloud[0]
    fake.next = Execution(
        results=[
            Result(png=base64.b64encode(PNG).decode(), text="<Figure>"),
            Result(text="42", html="<b>42</b>", is_main_result=True, extra={"application/x-custom": "v"}),
        ],
        logs=Logs(stdout=["a\n", "b\n"], stderr=["warn\n"]),
        error=ExecutionError("ValueError", "bad", "Traceback...\nValueError: bad"),
        execution_count=3,
    )
    ex = await sbx.run_code("code", timeout=5)
    assert fake.codes[-1] == ("code", 5)
    assert ex.stdout == "a\nb\n" and ex.stderr == "warn\n" and ex.execution_count == 3
    assert ex.results[0].png == PNG and ex.results[0].formats() == ["text", "png"]
    assert ex.results[1].is_main_result and ex.results[1].text == "42" and ex.results[1].html == "<b>42</b>"
    assert ex.results[1].extra == {"application/x-custom": "v"}
    assert ex.error is not None
    assert (ex.error.name, ex.error.value, ex.error.traceback) == (
        "ValueError",
        "bad",
        "Traceback...\nValueError: bad",
    )
    assert fake.timeouts  # each use pushes the VM's expiry out

    ex = await sbx.run_code("pass")  # default timeout comes from the limits
    assert fake.codes[-1] == ("pass", 30) and ex.error is None and ex.results == []

    fake.next = Execution(logs=Logs(stdout=["x" * 500]))
    assert (await sbx.run_code("spam")).stdout.endswith("[output truncated]\n")


async def test_timeout_becomes_an_execution_error(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits).create()
    cloud[0].next = TimeoutException("Execution timed out")
    ex = await sbx.run_code("while True: pass", timeout=1)
    assert ex.error is not None and ex.error.name == "TimeoutError"


async def test_gone_sandbox_raises_sandbox_dead(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits).create()
    cloud[0].running = False
    assert not await sbx.is_alive()
    with pytest.raises(SandboxDead):
        await sbx.run_code("1")
    cloud[0].running = True
    cloud[0].next = TimeoutException("sandbox timed out")
    cloud[0].is_running = _false
    with pytest.raises(SandboxDead):
        await sbx.run_code("1")


async def _false(**kw):
    return False


async def test_files_map_to_mnt_data(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits).create()
    fake = cloud[0]
    assert await sbx.write_file("in/d.csv", b"a,b\n") == "/mnt/data/in/d.csv"
    assert await sbx.write_file("/mnt/data/x.bin", b"\x00\x01") == "/mnt/data/x.bin"
    assert fake.files.store == {"/mnt/data/in/d.csv": b"a,b\n", "/mnt/data/x.bin": b"\x00\x01"}
    assert await sbx.read_file("/mnt/data/x.bin") == b"\x00\x01"
    with pytest.raises(FileNotFoundError):
        await sbx.read_file("nope")
    with pytest.raises(ValueError):
        await sbx.write_file("/etc/passwd", b"")
    listed = await sbx.list_files()  # directories and symlinks are left out
    assert [(f.path, f.size, f.mtime) for f in listed] == [
        ("/mnt/data/in/d.csv", 4, MTIME.timestamp()),
        ("/mnt/data/x.bin", 2, MTIME.timestamp()),
    ]


async def test_kill_is_idempotent(cloud, limits):
    sbx = await E2BSandboxProvider("key", limits).create()
    await sbx.kill()
    await sbx.kill()
    assert cloud[0].kills == 1 and not await sbx.is_alive()
