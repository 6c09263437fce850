"""The IPython kernel of a local sandbox: start it (inside bubblewrap, or bare in unsafe mode),
run one cell with a wall-clock deadline, and stop it.

The sandbox's cgroup (see `cgroup`, where the host allows one) bounds memory, processes and CPU
for the sandbox as a whole; rlimits bound each process (address space, CPU time, file size, and
the process count where there is no cgroup). At a cell's deadline the processes it left are
killed (`proctree`) and the kernel is interrupted; a kernel that does not stop within
`INTERRUPT_GRACE` must be killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from activities.sandbox.base import WORK_DIR, Execution, SandboxDead, SandboxError
from activities.sandbox.bwrap import CONTROL_DIR, LocalConfig, bwrap_argv, preexec_user, sandbox_env
from activities.sandbox.cgroup import SandboxCgroup
from activities.sandbox.jupyter_output import Collector, timed_out
from activities.sandbox.limits import SandboxLimits
from activities.sandbox.proctree import descendants, kill_strays
from activities.sandbox.seccomp import filter_fd

KERNEL_START_TIMEOUT = 60.0
INTERRUPT_GRACE = 5.0  # seconds a kernel gets to stop after an interrupt before it is killed

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


# Run as root before bwrap: move this process into the sandbox's cgroup(s), drop to the sandbox
# uid (when one is given), then exec bwrap. Everything the sandbox starts inherits the group.
_JOIN = """
import os, sys
a = sys.argv[1:]
end = a.index("--")
for procs in a[1:end]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
uid = int(a[0])
if uid >= 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
os.execv(a[end + 1], a[end + 1:])
"""


def rlimits(limits: SandboxLimits, *, isolated: bool, cgroup: bool = False) -> list[tuple[str, int]]:
    out = [
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_CPU", limits.cpu_seconds),
        ("RLIMIT_FSIZE", limits.file_size_bytes),
        ("RLIMIT_CORE", 0),
    ]
    # NPROC counts every process of the uid, which all sandboxes share: only a fallback for when
    # there is no cgroup, whose pids.max counts this sandbox alone.
    if not cgroup and (os.geteuid() == 0 or isolated):
        out.append(("RLIMIT_NPROC", limits.processes))
    return out


def joined(argv: list[str], group: SandboxCgroup, uid: int | None) -> list[str]:
    """`argv` started inside `group` (and as `uid`), through the _JOIN prelude."""
    head = [sys.executable, "-I", "-S", "-c", _JOIN, str(-1 if uid is None else uid)]
    return [*head, *group.procs_files, "--", *argv]


class Kernel:
    """One running kernel process and the ZeroMQ client that talks to it."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        client: Any,
        limits: SandboxLimits,
        cgroup: SandboxCgroup | None = None,
    ) -> None:
        self.proc = proc
        self.client = client
        self.limits = limits
        self.cgroup = cgroup
        self.core: set[int] = set()  # bwrap and the kernel: what a timeout leaves running

    def kill_strays(self) -> int:
        """Kill every process of the sandbox but its core (what cells left running)."""
        members = self.cgroup.pids if self.cgroup is not None else None
        return kill_strays(self.proc.pid, self.core, members)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    @classmethod
    async def start(
        cls,
        cfg: LocalConfig,
        limits: SandboxLimits,
        root: Path,
        *,
        isolated: bool,
        cgroup: SandboxCgroup | None = None,
    ) -> Kernel:
        """A ready kernel for the sandbox whose host folder is `root` (ctl/, data/, home/), started
        inside `cgroup` when given."""
        import zmq
        import zmq.asyncio
        from jupyter_client.asynchronous import AsyncKernelClient

        ctl, data = root / "ctl", root / "data"
        for p in ctl.iterdir():  # sockets of a previous kernel
            p.unlink()
        key = secrets.token_hex(32)
        ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
        inner_ctl = CONTROL_DIR if isolated else str(ctl)
        info: dict[str, Any] = {
            **ports,
            "transport": "ipc",
            "ip": f"{inner_ctl}/k",
            "key": key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }
        conn = ctl / "connection.json"
        conn.write_text(json.dumps(info))
        if os.geteuid() == 0:
            os.chown(conn, cfg.uid, cfg.uid)  # the kernel runs as the sandbox uid
        os.chmod(conn, 0o600)

        python = str(cfg.runtime / "bin" / "python")
        boot = _BOOT.format(
            limits=rlimits(limits, isolated=isolated, cgroup=cgroup is not None),
            conn=f"{inner_ctl}/connection.json",
            cwd=WORK_DIR if isolated else str(data),
        )
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        sfd = filter_fd() if isolated else None  # the seccomp program bwrap installs (see seccomp)
        if isolated:
            argv = bwrap_argv(cfg, limits, root, python, boot, seccomp_fd=sfd)
        else:
            argv = [python, "-c", boot]
            env.update(sandbox_env(home=str(root / "home"), tmp=str(root / "home")))
        user = preexec_user(cfg.uid)
        if cgroup is not None:
            # Join the group first (as root where we are root), then drop to the sandbox uid.
            argv = joined(argv, cgroup, user["user"] if user else None)
            user = {}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd="/",
                start_new_session=True,
                pass_fds=() if sfd is None else (sfd,),
                **user,
            )
        finally:
            if sfd is not None:
                os.close(sfd)  # bwrap has its own copy
        # The kernel is untrusted: zmq drops any single message over the cap before it reaches us.
        ctx = zmq.asyncio.Context()
        ctx.setsockopt(zmq.MAXMSGSIZE, limits.results_bytes + 16 * limits.output_bytes)
        kc = AsyncKernelClient(context=ctx)
        kc.load_connection_info({**info, "ip": f"{ctl}/k"})  # type: ignore[typeddict-item]
        kc.start_channels(hb=False)
        kernel = cls(proc, kc, limits, cgroup)
        ready = asyncio.ensure_future(kc.wait_for_ready(timeout=KERNEL_START_TIMEOUT))
        died = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, died}, timeout=KERNEL_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            ready.cancel()
            died.cancel()
            await kernel.stop()
            raise
        if ready in done and ready.exception() is None:
            died.cancel()
            # No user code has run yet: every process now is bwrap or the kernel itself.
            kernel.core = await asyncio.to_thread(descendants, proc.pid)
            return kernel
        ready.cancel()
        died.cancel()
        stderr = b""
        if proc.returncode is not None and proc.stderr is not None:
            stderr = await proc.stderr.read()
        await kernel.stop()
        raise SandboxError(
            f"sandbox kernel failed to start: {stderr.decode(errors='replace').strip()[-2000:] or 'timeout'}"
        )

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop_channels()
            self.client.context.destroy(linger=0)
        if self.proc.returncode is None:
            # Killing bwrap kills the sandbox's pid 1 (--die-with-parent), which ends every process in it.
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 10)
        if self.cgroup is not None:  # anything that escaped bwrap's pid namespace teardown
            await asyncio.to_thread(self.cgroup.kill)

    async def execute(self, code: str, timeout: float) -> tuple[Execution, bool]:  # noqa: ASYNC109
        """Run one cell; returns (execution, kernel_must_be_restarted)."""
        import queue

        kc = self.client
        out = Collector(self.limits.output_bytes, self.limits.results_bytes)
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interrupted_at: float | None = None
        ooms = self.cgroup.oom_kills() if self.cgroup is not None else 0
        died = asyncio.ensure_future(self.proc.wait())
        try:
            while True:
                now = loop.time()
                if interrupted_at is None and now >= deadline:
                    interrupted_at = now
                    # The cell's own processes first: a kernel waiting on a child then returns.
                    await asyncio.to_thread(self.kill_strays)
                    kc.control_channel.send(kc.session.msg("interrupt_request", content={}))
                if interrupted_at is not None and now >= interrupted_at + INTERRUPT_GRACE:
                    return timed_out(out, timeout, restarted=True), True
                if died.done():
                    if self.cgroup is not None and self.cgroup.oom_kills() > ooms:
                        why = f"out of memory: the sandbox's {self.limits.memory_bytes}-byte memory limit"
                    else:
                        why = "likely a resource limit: memory, CPU time or processes"
                    raise SandboxDead(
                        f"sandbox kernel died during execution (exit {self.proc.returncode}; {why})"
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
            return timed_out(out, timeout, restarted=False), False
        return out.execution(), False
