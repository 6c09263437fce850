"""The local backend: an IPython kernel inside bubblewrap, as an unprivileged uid, with no network.

Isolation (see `_bwrap_argv`): new user, pid, net, ipc, uts and cgroup namespaces
(`--unshare-all`); a root filesystem built from read-only binds of only what Python needs
(/usr, the /lib* and /bin links, a few /etc files, the sandbox runtime venv), a private
size-limited /tmp, a minimal /dev and its own /proc, and the session's work dir read-write at
/mnt/data. The host's /, data dir, /root, /etc/shadow and environment are simply not there.
The kernel talks to us over ZeroMQ `ipc` sockets in a bound control dir, because TCP cannot
cross the network namespace. rlimits bound memory, CPU, processes and file size; a wall-clock
deadline per execution interrupts the kernel, then kills and restarts it if it does not stop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
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
    SandboxUnavailable,
    resolve_work_path,
)
from activities.sandbox.limits import SandboxLimits

log = logging.getLogger(__name__)

CONTROL_DIR = "/run/kernel"  # where the kernel sees its connection file and ipc sockets
KERNEL_START_TIMEOUT = 60.0
INTERRUPT_GRACE = 5.0  # seconds a kernel gets to stop after an interrupt before it is killed
# Only these /etc entries are visible: the loader's cache, time zone and MIME data.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "nsswitch.conf")
MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
BINARY_FIELDS = {"png", "jpeg", "pdf"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Runs inside the sandbox before the kernel: limits first, then a writable matplotlib config
# seeded from the runtime's prebuilt font cache (a read-only one would be rebuilt every start).
_BOOT = """
import os, resource, shutil, sys
for name, value in {limits!r}:
    resource.setrlimit(getattr(resource, name), (value, value))
seed = os.path.join(sys.prefix, "mplconfig")
cfg = os.environ["MPLCONFIGDIR"]
if os.path.isdir(seed) and not os.path.exists(cfg):
    shutil.copytree(seed, cfg)
os.chdir({cwd!r})
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", {conn!r},
         "--HistoryManager.enabled=False", "--Application.log_level=WARN"])
"""


@dataclass(frozen=True)
class LocalConfig:
    runtime: Path  # the sandbox's venv (world-readable)
    work_root: Path  # host folder holding one folder per sandbox
    uid: int = 65534
    unsafe: bool = False
    bwrap: str = "bwrap"


def _preexec_user(uid: int) -> dict[str, Any]:
    """Subprocess kwargs that drop to `uid` when we are root (bwrap then maps it 1:1, unprivileged)."""
    if os.geteuid() != 0:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def _runtime_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


async def check_bwrap(cfg: LocalConfig) -> str | None:
    """None when bubblewrap can build our sandbox here, else why not."""
    exe = shutil.which(cfg.bwrap)
    if exe is None:
        return (
            "bubblewrap (bwrap) is not installed; run scripts/setup_sandbox.sh (apt-get install bubblewrap)"
        )
    if not (cfg.runtime / "bin" / "python").exists():
        return f"sandbox runtime {cfg.runtime} is missing; run scripts/setup_sandbox.sh"
    argv = [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--clearenv"]
    argv += _runtime_binds() + [
        "--ro-bind",
        str(cfg.runtime),
        str(cfg.runtime),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    argv += [
        "--tmpfs",
        "/tmp",
        "--uid",
        str(cfg.uid),
        "--gid",
        str(cfg.uid),
        str(cfg.runtime / "bin" / "python"),
        "-c",
        "pass",
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            **_preexec_user(cfg.uid),
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except (OSError, TimeoutError) as e:
        return f"bubblewrap failed to start: {e}"
    if proc.returncode != 0:
        return f"bubblewrap cannot create a sandbox here (user namespaces disabled?): {err.decode(errors='replace').strip()}"
    return None


class LocalSandboxProvider(SandboxProvider):
    name = "local"

    def __init__(self, cfg: LocalConfig, limits: SandboxLimits) -> None:
        self.cfg = cfg
        self.limits = limits
        self._checked: asyncio.Future[str | None] | None = None

    async def unavailable_reason(self) -> str | None:
        """Checked once per provider: bwrap is probed on first use, not at import."""
        if self._checked is None:
            self._checked = asyncio.ensure_future(check_bwrap(self.cfg))
            await asyncio.to_thread(sweep_orphans, Path(self.cfg.work_root))
        reason = await self._checked
        if reason and not self.cfg.unsafe:
            return (
                reason
                + " (or set ASSISTANTS_SANDBOX_UNSAFE=true to run code WITHOUT isolation, or E2B_API_KEY)"
            )
        return None

    async def create(self) -> LocalSandbox:
        reason = await self.unavailable_reason()
        if reason:
            raise SandboxUnavailable(reason)
        isolated = not (self._checked and self._checked.result())
        if not isolated:
            log.warning("sandbox: UNSAFE mode, user code runs without isolation (bubblewrap unusable)")
        sbx = LocalSandbox(self.cfg, self.limits, isolated=isolated)
        try:
            await sbx.start()
        except BaseException:
            await sbx.kill()
            raise
        return sbx


class LocalSandbox(Sandbox):
    def __init__(self, cfg: LocalConfig, limits: SandboxLimits, *, isolated: bool = True) -> None:
        self.cfg = cfg
        self.limits = limits
        self.isolated = isolated
        self.id = "sbx_" + secrets.token_hex(8)
        self._root = Path(cfg.work_root) / self.id  # host: ctl/ (sockets) and data/ (/mnt/data)
        self._ctl = self._root / "ctl"
        self._data = self._root / "data"
        self._proc: asyncio.subprocess.Process | None = None
        self._kc: Any = None
        self._lock = asyncio.Lock()  # one execution at a time, as in a notebook
        self._killed = False

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._make_dirs)
        await self._start_kernel()

    def _make_dirs(self) -> None:
        Path(self.cfg.work_root).mkdir(parents=True, exist_ok=True)
        os.chmod(self.cfg.work_root, 0o711)  # traversable by the sandbox uid, not listable
        self._root.mkdir(mode=0o711)
        (self._root / "owner.pid").write_text(str(os.getpid()))
        for d in (self._ctl, self._data, self._root / "home"):
            d.mkdir(mode=0o700)
            if os.geteuid() == 0:
                os.chown(d, self.cfg.uid, self.cfg.uid)

    async def _start_kernel(self) -> None:
        import zmq
        import zmq.asyncio
        from jupyter_client.asynchronous import AsyncKernelClient

        for p in self._ctl.iterdir():  # sockets of a previous kernel
            p.unlink()
        key = secrets.token_hex(32)
        ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
        inner_ctl = CONTROL_DIR if self.isolated else str(self._ctl)
        info: dict[str, Any] = {
            **ports,
            "transport": "ipc",
            "ip": f"{inner_ctl}/k",
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }
        conn = self._ctl / "connection.json"
        conn.write_text(json.dumps(info))
        if os.geteuid() == 0:
            os.chown(conn, self.cfg.uid, self.cfg.uid)  # the kernel runs as the sandbox uid
        os.chmod(conn, 0o600)

        python = str(self.cfg.runtime / "bin" / "python")
        boot = _BOOT.format(
            limits=self._rlimits(),
            conn=f"{inner_ctl}/connection.json",
            cwd=WORK_DIR if self.isolated else str(self._data),
        )
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        if self.isolated:
            argv = self._bwrap_argv(python, boot)
        else:
            argv = [python, "-c", boot]
            env.update(self._sandbox_env(home=str(self._root / "home"), tmp=str(self._root / "home")))
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,
            **_preexec_user(self.cfg.uid),
        )
        # The kernel is untrusted: zmq drops any single message over the cap before it reaches us.
        ctx = zmq.asyncio.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, self.limits.results_bytes + 16 * self.limits.output_bytes)
        kc = AsyncKernelClient(context=ctx)
        kc.load_connection_info({**info, "ip": f"{self._ctl}/k"})  # type: ignore[typeddict-item]
        kc.start_channels(hb=False)
        self._kc = kc
        ready = asyncio.ensure_future(kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT))
        died = asyncio.ensure_future(self._proc.wait())
        done, _ = await asyncio.wait(
            {ready, died}, timeout=KERNEL_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done and ready.exception() is None:
            died.cancel()
            return
        ready.cancel()
        died.cancel()
        stderr = b""
        if self._proc.returncode is not None and self._proc.stderr is not None:
            stderr = await self._proc.stderr.read()
        await self._stop_kernel()
        raise SandboxError(
            f"sandbox kernel failed to start: {stderr.decode(errors='replace').strip()[-2000:] or 'timeout'}"
        )

    def _rlimits(self) -> list[tuple[str, int]]:
        lim = self.limits
        out = [
            ("RLIMIT_AS", lim.memory_bytes),
            ("RLIMIT_CPU", lim.cpu_seconds),
            ("RLIMIT_FSIZE", lim.file_size_bytes),
            ("RLIMIT_CORE", 0),
        ]
        if (
            os.geteuid() == 0 or self.isolated
        ):  # NPROC counts the whole uid: only meaningful for a dedicated one
            out.append(("RLIMIT_NPROC", lim.processes))
        return out

    def _sandbox_env(self, home: str, tmp: str) -> dict[str, str]:
        return {
            "HOME": home,
            "TMPDIR": tmp,
            "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            # Jupyter's default, set lazily: figures render with Agg and come back as image/png
            # display data at the end of each cell. (An eager `%matplotlib inline` costs ~1.5 s per start.)
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",  # BLAS thread pools would spend RLIMIT_NPROC for little gain
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }

    def _bwrap_argv(self, python: str, boot: str) -> list[str]:
        exe = shutil.which(self.cfg.bwrap) or self.cfg.bwrap
        uid = str(self.cfg.uid)
        runtime = str(self.cfg.runtime)
        argv = [
            exe,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--uid",
            uid,
            "--gid",
            uid,
            "--clearenv",
            "--unsetenv",
            "JPY_PARENT_PID",
        ]
        argv += _runtime_binds() + ["--ro-bind", runtime, runtime]
        for name, value in {
            "PATH": f"{runtime}/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            **self._sandbox_env(home="/tmp", tmp="/tmp"),
        }.items():
            argv += ["--setenv", name, value]
        passwd = f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n"
        # Every tmpfs is memory outside RLIMIT_AS: only the size-limited /tmp and /dev/shm stay writable.
        size = str(self.limits.tmp_bytes)
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            size,
            "--tmpfs",
            "/dev/shm",
            "--size",
            size,
            "--tmpfs",
            "/tmp",
            "--bind",
            str(self._ctl),
            CONTROL_DIR,
            "--bind",
            str(self._data),
            WORK_DIR,
            "--chdir",
            WORK_DIR,
        ]
        # Files written to fds are racy with asyncio; write them into ctl (ours) and bind them.
        (self._ctl.parent / "passwd").write_text(passwd)
        (self._ctl.parent / "group").write_text(f"sandbox:x:{uid}:\n")
        argv += [
            "--ro-bind",
            str(self._root / "passwd"),
            "/etc/passwd",
            "--ro-bind",
            str(self._root / "group"),
            "/etc/group",
        ]
        for p in ("passwd", "group"):
            os.chmod(self._root / p, 0o644)
        argv += ["--remount-ro", "/dev", "--remount-ro", "/"]  # last: after every mount point exists
        return argv + [python, "-c", boot]

    async def _stop_kernel(self) -> None:
        if self._kc is not None:
            with contextlib.suppress(Exception):
                self._kc.stop_channels()
                self._kc.context.destroy(linger=0)
            self._kc = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # Killing bwrap kills the sandbox's pid 1 (--die-with-parent), which ends every process in it.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)

    async def kill(self) -> None:
        self._killed = True
        await self._stop_kernel()
        # rmtree never follows symlinks, so links the sandbox planted cannot redirect it.
        await asyncio.to_thread(shutil.rmtree, self._root, True)

    async def is_alive(self) -> bool:
        return not self._killed and self._proc is not None and self._proc.returncode is None

    # ---- code ------------------------------------------------------------------------------
    async def run_code(self, code: str, timeout: float | None = None) -> Execution:  # noqa: ASYNC109
        async with self._lock:
            if not await self.is_alive():
                raise SandboxDead(f"sandbox {self.id} is not running")
            timeout = self.limits.timeout_seconds if timeout is None else timeout
            execution, timed_out = await self._execute(code, timeout)
            if timed_out:
                # The kernel ignored the interrupt: start a fresh one; files in /mnt/data stay.
                await self._stop_kernel()
                await self._start_kernel()
            return execution

    async def _execute(self, code: str, timeout: float) -> tuple[Execution, bool]:  # noqa: ASYNC109
        """Run one cell; returns (execution, kernel_must_be_restarted)."""
        import queue

        kc = self._kc
        assert kc is not None and self._proc is not None
        out = _Collector(self.limits.output_bytes, self.limits.results_bytes)
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interrupted_at: float | None = None
        died = asyncio.ensure_future(self._proc.wait())
        try:
            while True:
                now = loop.time()
                if interrupted_at is None and now >= deadline:
                    interrupted_at = now
                    kc.control_channel.send(kc.session.msg("interrupt_request", content={}))
                if interrupted_at is not None and now >= interrupted_at + INTERRUPT_GRACE:
                    return self._timed_out(out, timeout, restarted=True), True
                if died.done():
                    raise SandboxDead(
                        f"sandbox kernel died during execution (exit {self._proc.returncode}; "
                        "likely a resource limit: memory, CPU time or processes)"
                    )
                try:
                    msg = await kc.get_iopub_msg(
                        timeout=min(0.5, max(0.01, (interrupted_at or deadline) - now + 0.01))
                    )
                except queue.Empty:
                    continue
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    break
                out.add(msg)
        finally:
            died.cancel()
        with contextlib.suppress(queue.Empty):  # drain the shell reply so replies never pile up
            await kc.get_shell_msg(timeout=1)
        if interrupted_at is not None:
            return self._timed_out(out, timeout, restarted=False), False
        return out.execution(), False

    @staticmethod
    def _timed_out(out: _Collector, timeout: float, *, restarted: bool) -> Execution:
        ex = out.execution()
        note = (
            " The sandbox did not respond to the interrupt and was restarted: variables are lost, files kept."
            if restarted
            else ""
        )
        ex.error = ExecutionError(
            "TimeoutError", f"Execution exceeded the time limit of {timeout:g} seconds.{note}"
        )
        return ex

    # ---- files -----------------------------------------------------------------------------
    # The work dir belongs to the sandbox uid, which can plant symlinks; we act as root, so every
    # path is walked with O_NOFOLLOW from a directory fd and only regular files are read.
    async def write_file(self, path: str, data: bytes) -> str:
        rel = resolve_work_path(path)
        await asyncio.to_thread(
            _safe_write, self._data, rel, data, self.cfg.uid if os.geteuid() == 0 else None
        )
        return f"{WORK_DIR}/{rel}"

    async def read_file(self, path: str) -> bytes:
        rel = resolve_work_path(path)
        return await asyncio.to_thread(_safe_read, self._data, rel, self.limits.file_size_bytes)

    async def list_files(self) -> list[FileInfo]:
        return await asyncio.to_thread(_safe_list, self._data)


class _Collector:
    """Turns iopub messages into an Execution, keeping at most `cap` bytes of each stream."""

    def __init__(self, cap: int, results_cap: int) -> None:
        self.cap = cap
        self.results_cap = results_cap
        self.results_size = 0
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.results: list[Result] = []
        self.error: ExecutionError | None = None
        self.count: int | None = None
        self.dropped = False

    def add(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            name = "stderr" if content.get("name") == "stderr" else "stdout"
            text = content.get("text", "")
            room = self.cap - self.sizes[name]
            if room > 0:
                self.streams[name].append(
                    text[:room] + ("\n[output truncated]\n" if len(text) > room else "")
                )
            self.sizes[name] += len(text)
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            self.results_size += sum(
                len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values()
            )
            if self.results_size <= self.results_cap:
                self.results.append(_result(data, main=kind == "execute_result"))
            elif not self.dropped:
                self.dropped = True
                self.streams["stderr"].append(f"\n[results over {self.results_cap} bytes dropped]\n")
        elif kind == "error":
            tb = "\n".join(_ANSI.sub("", line) for line in content.get("traceback", []))
            self.error = ExecutionError(content.get("ename", "Error"), content.get("evalue", ""), tb)
        elif kind == "execute_input":
            self.count = content.get("execution_count")

    def execution(self) -> Execution:
        return Execution(
            stdout="".join(self.streams["stdout"]),
            stderr="".join(self.streams["stderr"]),
            results=self.results,
            error=self.error,
            execution_count=self.count,
        )


def _result(data: dict[str, Any], *, main: bool) -> Result:
    r = Result(is_main_result=main)
    for mime, value in data.items():
        name = MIME_FIELDS.get(mime)
        if name is None:
            r.extra[mime] = value
        elif name in BINARY_FIELDS:
            setattr(r, name, base64.b64decode(value) if isinstance(value, str) else value)
        else:
            setattr(r, name, value)
    return r


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_parent(root: Path, rel: str, *, create: bool, uid: int | None) -> tuple[int, str]:
    parts = rel.split("/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if uid is not None:
                        os.chown(part, uid, uid, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _safe_write(root: Path, rel: str, data: bytes, uid: int | None) -> None:
    dfd, name = _open_parent(root, rel, create=True, uid=uid)
    try:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=dfd)  # a symlink or fifo planted where we write: replace it
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
        )
        with os.fdopen(fd, "wb") as f:
            if uid is not None:
                os.fchown(f.fileno(), uid, uid)
            f.write(data)
    finally:
        os.close(dfd)


def _safe_read(root: Path, rel: str, cap: int) -> bytes:
    try:
        dfd, name = _open_parent(root, rel, create=False, uid=None)
    except (NotADirectoryError, OSError) as e:
        raise FileNotFoundError(f"{WORK_DIR}/{rel}") from e
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as e:
        raise FileNotFoundError(f"{WORK_DIR}/{rel}") from e
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"{WORK_DIR}/{rel} is not a regular file")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise SandboxError(f"{WORK_DIR}/{rel} is larger than {cap} bytes")
    return data


def _safe_list(root: Path) -> list[FileInfo]:
    out: list[FileInfo] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                out.append(FileInfo(path=f"{WORK_DIR}/{rel}", size=st.st_size, mtime=st.st_mtime))
    return out


def sweep_orphans(work_root: Path) -> None:
    """Remove work dirs left by a worker that died without killing its sandboxes."""
    if not work_root.is_dir():
        return
    for d in work_root.glob("sbx_*"):
        try:
            pid = int((d / "owner.pid").read_text())
            os.kill(pid, 0)
            continue  # its worker is alive: not ours to touch
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # unreadable or half-written: leave it alone
        log.info("sandbox: removing orphaned work dir %s", d)
        shutil.rmtree(d, ignore_errors=True)


def default_work_root() -> Path:
    return Path(tempfile.gettempdir()) / "assistants-sandbox"
