"""The local sandbox's isolation policy: the bubblewrap command line, and a probe that it works here.

New user, pid, net, ipc, uts and cgroup namespaces (`--unshare-all`); a root filesystem built
from read-only binds of only what Python needs (/usr, the /lib* and /bin links, a few /etc
files, the sandbox runtime venv), a private size-limited /tmp, a minimal /dev and its own /proc,
and the session's work dir read-write at /mnt/data. The host's /, data dir, /root, /etc/shadow
and environment are simply not there. The kernel's ZeroMQ `ipc` sockets live in a bound control
dir, because TCP cannot cross the network namespace.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.sandbox.base import WORK_DIR
from activities.sandbox.limits import SandboxLimits
from activities.sandbox.seccomp import bwrap_seccomp_args

CONTROL_DIR = "/run/kernel"  # where the kernel sees its connection file and ipc sockets
# Only these /etc entries are visible: the loader's cache, time zone and MIME data.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "nsswitch.conf")


@dataclass(frozen=True)
class LocalConfig:
    runtime: Path  # the sandbox's venv (world-readable)
    work_root: Path  # host folder holding one folder per sandbox
    uid: int = 65534
    unsafe: bool = False
    bwrap: str = "bwrap"
    cgroup: bool = True  # a cgroup per sandbox where the host allows one (False: rlimits only)
    disk_quota: bool = True  # /mnt/data as a size-limited tmpfs where the worker may mount one


def preexec_user(uid: int) -> dict[str, Any]:
    """Subprocess kwargs that drop to `uid` when we are root (bwrap then maps it 1:1, unprivileged)."""
    if os.geteuid() != 0:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def runtime_binds() -> list[str]:
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
    argv += runtime_binds() + [
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
            **preexec_user(cfg.uid),
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except (OSError, TimeoutError) as e:
        return f"bubblewrap failed to start: {e}"
    if proc.returncode != 0:
        return f"bubblewrap cannot create a sandbox here (user namespaces disabled?): {err.decode(errors='replace').strip()}"
    return None


def sandbox_env(home: str, tmp: str) -> dict[str, str]:
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


def bwrap_argv(
    cfg: LocalConfig,
    limits: SandboxLimits,
    root: Path,
    python: str,
    boot: str,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The bubblewrap command line that runs `python -c boot` in a sandbox over `root` (its ctl/ and
    data/ folders); the policy is in the module docstring. `seccomp_fd`: an fd holding the
    `seccomp.filter_bytes()` program, passed to the child (`pass_fds`), applied before `python`."""
    ctl, data = root / "ctl", root / "data"
    exe = shutil.which(cfg.bwrap) or cfg.bwrap
    uid = str(cfg.uid)
    runtime = str(cfg.runtime)
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
    argv += runtime_binds() + ["--ro-bind", runtime, runtime]
    for name, value in {
        "PATH": f"{runtime}/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        **sandbox_env(home="/tmp", tmp="/tmp"),
    }.items():
        argv += ["--setenv", name, value]
    passwd = f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n"
    # Every tmpfs is memory outside RLIMIT_AS: only the size-limited /tmp and /dev/shm stay writable.
    size = str(limits.tmp_bytes)
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
        str(ctl),
        CONTROL_DIR,
        "--bind",
        str(data),
        WORK_DIR,
        "--chdir",
        WORK_DIR,
    ]
    # Files written to fds are racy with asyncio; write them into ctl (ours) and bind them.
    (root / "passwd").write_text(passwd)
    (root / "group").write_text(f"sandbox:x:{uid}:\n")
    argv += [
        "--ro-bind",
        str(root / "passwd"),
        "/etc/passwd",
        "--ro-bind",
        str(root / "group"),
        "/etc/group",
    ]
    for p in ("passwd", "group"):
        os.chmod(root / p, 0o644)
    argv += ["--remount-ro", "/dev", "--remount-ro", "/"]  # last: after every mount point exists
    if seccomp_fd is not None:
        argv += bwrap_seccomp_args(seccomp_fd)
    return argv + [python, "-c", boot]
