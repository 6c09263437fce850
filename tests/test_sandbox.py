"""Security and behaviour tests through the REAL local sandbox (bubblewrap + ipykernel).

Nothing is faked here: every test runs code in a kernel inside bwrap as uid 65534. The sandbox
uses small limits so the limit tests are quick; the defaults differ only in size.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import pytest_asyncio

from activities.sandbox import SandboxLimits, SandboxSessions, SandboxUnavailable
from activities.sandbox.local import LocalConfig, LocalSandboxProvider, check_bwrap, sweep_orphans
from assistants.settings import Settings
from tests.requires import missing

# asyncio mode and the session loop come from pyproject (asyncio_mode = "auto").
pytestmark = pytest.mark.timeout(120)

SECRET_NAME = "ASSISTANTS_TEST_SANDBOX_SECRET"
SECRET_VALUE = "s3cr3t-" + os.urandom(8).hex()
LIMITS = SandboxLimits(
    memory_bytes=1024**3,
    cpu_seconds=120,
    processes=64,
    file_size_bytes=8 * 1024**2,
    tmp_bytes=64 * 1024**2,
    timeout_seconds=30,
    output_bytes=64 * 1024,
)


@pytest.fixture(scope="module")
def work_root():
    # Not under pytest's tmp_path: that is mode 0700 root, which the sandbox uid cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="assistants-sbx-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cfg(work_root):
    return LocalConfig(runtime=Settings().sandbox_runtime, work_root=work_root)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def provider(cfg):
    reason = await check_bwrap(cfg)
    if reason:
        missing(f"local sandbox unusable: {reason}")
    os.environ[SECRET_NAME] = SECRET_VALUE  # the host process holds a secret the sandbox must not see
    p = LocalSandboxProvider(cfg, LIMITS)
    yield p
    os.environ.pop(SECRET_NAME, None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sbx(provider):
    s = await provider.create()
    yield s
    await s.kill()


async def run_ok(sbx, code: str, timeout: float | None = None):  # noqa: ASYNC109
    ex = await sbx.run_code(code, timeout=timeout)
    assert ex.error is None, (ex.error, ex.stderr)
    return ex


async def test_state_persists_between_calls(sbx):
    await run_ok(sbx, "x = 41\nimport os")
    ex = await run_ok(sbx, "x + 1")
    assert [r.text for r in ex.results if r.is_main_result] == ["42"]
    ex = await run_ok(sbx, "print(os.getuid(), os.getgid(), os.getcwd())")
    assert ex.stdout.split() == ["65534", "65534", "/mnt/data"]


async def test_no_network_to_host_services_or_internet(sbx):
    hits = []

    async def on_conn(reader, writer):
        hits.append(1)
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The listener is reachable from the host, so a failure inside is the sandbox, not the listener.
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.close()
    await asyncio.sleep(0.1)
    assert hits == [1]
    try:
        ex = await run_ok(
            sbx,
            f"""
import socket
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as e:
        return type(e).__name__
print(attempt("127.0.0.1", {port}))
print(attempt("1.1.1.1", 53))
print(attempt("151.101.0.223", 443))
try:
    socket.getaddrinfo("pypi.org", 443); print("resolved")
except OSError as e:
    print("no-dns")
print(sorted(name for _, name in socket.if_nameindex()))
""",
        )
    finally:
        server.close()
        await server.wait_closed()
    local, internet1, internet2, dns, ifaces = ex.stdout.strip().splitlines()
    assert local == "ConnectionRefusedError"  # its own empty loopback, not the host's
    assert internet1 != "connected" and internet2 != "connected"
    assert dns == "no-dns"
    assert ifaces == "['lo']"
    assert hits == [1]


async def test_host_files_and_secrets_invisible(sbx, work_root):
    data_dir = Settings().resolved_data_dir
    ex = await run_ok(
        sbx,
        f"""
import os, glob
paths = ["/root", "/etc/shadow", "/home", "/work", {str(data_dir)!r}, {str(work_root)!r}, "/var", "/sys"]
print([p for p in paths if os.path.exists(p)])
leaks = [k for k, v in os.environ.items() if {SECRET_NAME!r} in k or {SECRET_VALUE!r} in v]
for p in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if {SECRET_VALUE!r}.encode() in open(p, "rb").read(): leaks.append(p)
    except OSError:
        pass
print(leaks)
print(sorted(os.listdir("/")))
print(sorted(os.listdir("/etc")))
print(open("/proc/self/status").read().split("CapEff:")[1].split()[0])
""",
    )
    visible, leaks, root, etc, capeff = ex.stdout.strip().splitlines()
    assert visible == "[]"
    assert leaks == "[]"
    assert set(eval(root)) <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "mnt",
        "opt",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
    }
    assert "shadow" not in etc and "passwd" in etc
    assert int(capeff, 16) == 0  # no capabilities at all


async def test_runtime_is_read_only(sbx):
    ex = await run_ok(
        sbx,
        """
import sys
out = []
for p in [sys.prefix + "/x", "/usr/x", "/etc/x", "/x", "/dev/x", "/mnt/x", "/run/x"]:
    try:
        open(p, "w").close(); out.append(p)
    except OSError:
        pass
print(out)
""",
    )
    assert ex.stdout.strip() == "[]"


async def test_infinite_loop_times_out_and_session_survives(sbx):
    await run_ok(sbx, "y = 'kept'")
    t0 = time.monotonic()
    ex = await sbx.run_code("while True:\n    pass", timeout=2)
    assert time.monotonic() - t0 < 2 + 6
    assert ex.error is not None and ex.error.name == "TimeoutError"
    ex = await run_ok(sbx, "y")  # interrupted, not restarted: state kept
    assert ex.results[0].text == "'kept'"


async def test_ignored_interrupt_is_killed_and_restarted(provider):
    s = await provider.create()
    try:
        await s.write_file("keep.txt", b"still here")
        ex = await s.run_code(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", timeout=1
        )
        assert ex.error is not None and ex.error.name == "TimeoutError" and "restarted" in ex.error.value
        ex = await run_ok(s, "print(open('/mnt/data/keep.txt').read(), 'signal' in dir())")
        assert ex.stdout.strip() == "still here False"
    finally:
        await s.kill()


async def test_huge_allocation_fails_cleanly(sbx):
    ex = await sbx.run_code("big = bytearray(16 * 1024**3)")
    assert ex.error is not None and ex.error.name == "MemoryError"
    ex = await sbx.run_code("import numpy as np\nbig = np.ones((16 * 1024**3) // 8)")
    assert ex.error is not None and "MemoryError" in ex.error.name
    await run_ok(sbx, "1 + 1")
    assert await sbx.is_alive()


async def test_hundreds_of_processes_refused(sbx):
    ex = await run_ok(
        sbx,
        """
import subprocess
procs, refused = [], None
for i in range(300):
    try:
        procs.append(subprocess.Popen(["/usr/bin/sleep", "30"]))
    except OSError as e:
        refused = type(e).__name__
        break
for p in procs:
    p.kill(); p.wait()
print(len(procs), refused)
""",
    )
    started, refused = ex.stdout.split()
    assert int(started) < LIMITS.processes and refused in ("BlockingIOError", "OSError")
    # The host is unaffected: it still forks freely.
    host = await asyncio.create_subprocess_exec("true")
    assert await host.wait() == 0


async def test_file_size_limit(sbx):
    ex = await sbx.run_code("open('/mnt/data/big.bin', 'wb').write(b'0' * (16 * 1024**2))")
    assert ex.error is not None and ex.error.name == "OSError" and "too large" in ex.error.value.lower()
    await run_ok(sbx, "import os; os.remove('/mnt/data/big.bin')")


async def test_matplotlib_figure_comes_back_as_png(sbx):
    ex = await run_ok(sbx, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()")
    pngs = [r.png for r in ex.results if r.png]
    assert len(pngs) == 1 and pngs[0].startswith(b"\x89PNG\r\n\x1a\n")
    ex = await run_ok(sbx, "from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))")
    assert ex.results[0].html == "<b>x</b>"


async def test_files_in_and_out(sbx):
    path = await sbx.write_file("in/data.csv", b"a,b\n1,2\n3,4\n")
    assert path == "/mnt/data/in/data.csv"
    ex = await run_ok(
        sbx,
        """
import pandas as pd
df = pd.read_csv('/mnt/data/in/data.csv')
df.assign(c=df.a + df.b).to_csv('/mnt/data/out.csv', index=False)
print(df.b.sum())
""",
    )
    assert ex.stdout.strip() == "6"
    files = {f.path: f for f in await sbx.list_files()}
    assert {"/mnt/data/in/data.csv", "/mnt/data/out.csv"} <= set(files)
    assert files["/mnt/data/out.csv"].size > 0 and files["/mnt/data/out.csv"].mtime > 0
    assert await sbx.read_file("out.csv") == b"a,b,c\n1,2,3\n3,4,7\n"
    with pytest.raises(ValueError):
        await sbx.read_file("../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        await sbx.read_file("missing.txt")


async def test_symlinks_planted_by_code_do_not_reach_host_files(sbx, tmp_path):
    # Host-side file operations run as root: a link the sandbox plants must never be followed.
    target = tmp_path / "host-secret.txt"
    target.write_text("host only")
    await run_ok(
        sbx,
        f"""
import os
os.symlink({str(target)!r}, '/mnt/data/link.txt')
os.symlink({str(tmp_path)!r}, '/mnt/data/linkdir')
""",
    )
    with pytest.raises(FileNotFoundError):
        await sbx.read_file("link.txt")
    with pytest.raises(FileNotFoundError):
        await sbx.read_file("linkdir/host-secret.txt")
    with pytest.raises(OSError):
        await sbx.write_file("linkdir/new.txt", b"x")
    await sbx.write_file("link.txt", b"replaced")  # replaces the link itself
    assert target.read_text() == "host only" and not (tmp_path / "new.txt").exists()
    assert await sbx.read_file("link.txt") == b"replaced"
    assert "/mnt/data/linkdir" not in {f.path for f in await sbx.list_files()}


async def test_sessions_idle_timeout_and_restore(provider):
    restored = []

    async def restore():
        restored.append(1)
        return [("input.csv", b"x\n1\n")]

    sessions = SandboxSessions(provider, idle_timeout=0.5, reap_interval=0.1)
    try:
        first = await sessions.get("thread_a", restore)
        await run_ok(first, "v = 'state'\nopen('/mnt/data/made.txt', 'w').write('m')")
        assert await sessions.get("thread_a", restore) is first  # kept while in use
        await asyncio.sleep(1.5)
        assert "thread_a" not in sessions and not await first.is_alive()
        second = await sessions.get("thread_a", restore)
        assert second is not first and restored == [1, 1]
        ex = await run_ok(second, "print('v' in dir(), open('/mnt/data/input.csv').read().split())")
        assert ex.stdout.strip() == "False ['x', '1']"
    finally:
        await sessions.aclose()


async def test_sessions_recreate_a_dead_sandbox(provider):
    sessions = SandboxSessions(provider, idle_timeout=3600)
    try:
        first = await sessions.get("thread_b", lambda: [("a.txt", b"A")])
        with pytest.raises(Exception):  # noqa: B017 - SandboxDead: the kernel killed itself
            await first.run_code("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout=10)
        await asyncio.sleep(0.2)
        assert not await first.is_alive()
        second = await sessions.get("thread_b", lambda: [("a.txt", b"A")])
        assert second is not first
        assert (await run_ok(second, "print(open('a.txt').read())")).stdout.strip() == "A"
    finally:
        await sessions.aclose()


async def test_unavailable_without_bubblewrap(work_root):
    cfg = LocalConfig(runtime=Settings().sandbox_runtime, work_root=work_root, bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await LocalSandboxProvider(cfg, LIMITS).create()


async def test_cli_prints_one_json_object(work_root):
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-sandbox-cli-"))
    os.chmod(data_dir, 0o755)  # the embedded Postgres it starts runs unprivileged
    env = {
        **os.environ,
        "ASSISTANTS_DATA_DIR": str(data_dir),
        "ASSISTANTS_SANDBOX_WORK_ROOT": str(work_root),
        "ASSISTANTS_SANDBOX_TIMEOUT_SECONDS": "20",
    }
    code = "print('hi'); open('/mnt/data/o.txt', 'w').write('x'); 6 * 7"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "sandbox",
        "run",
        "--",
        code,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    assert proc.returncode == 0, err.decode()
    obj = json.loads(out.decode().strip().splitlines()[-1])
    # What the code wrote became a File (in the data dir's own embedded database and storage).
    assert obj["stdout"] == "hi\n" and obj["error"] is None
    assert len(obj["files"]) == 1 and obj["files"][0].startswith("file-")
    assert obj["results"][0]["text"] == "42"


def test_orphaned_work_dirs_are_swept(tmp_path):
    dead, live = tmp_path / "sbx_dead", tmp_path / "sbx_live"
    for d, pid in ((dead, 2**22 + 1), (live, os.getpid())):  # above pid_max's default: never alive
        d.mkdir()
        (d / "owner.pid").write_text(str(pid))
    sweep_orphans(tmp_path)
    assert not dead.exists() and live.exists()
