"""The local sandbox's seccomp filter, through the REAL bubblewrap sandbox.

Each probe runs Python inside `bwrap_argv(..., seccomp_fd=...)` as the sandbox uid and makes raw
`syscall()`s with its own syscall numbers (not the filter's tables), so a wrong number in the
filter shows up here. Without the filter every test fails: the refused calls then succeed or
fail with another errno. The program's decisions are also checked by emulating it, for both
architectures, since only one of them runs here.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio

from activities.sandbox import SandboxLimits, seccomp
from activities.sandbox.bwrap import bwrap_argv, preexec_user
from activities.sandbox.local import LocalConfig, LocalSandboxProvider, check_bwrap
from assistants.settings import Settings
from tests.requires import missing

pytestmark = pytest.mark.timeout(120)

LIMITS = SandboxLimits(
    memory_bytes=1024**3,
    cpu_seconds=120,
    processes=64,
    file_size_bytes=8 * 1024**2,
    tmp_bytes=64 * 1024**2,
    timeout_seconds=30,
    output_bytes=64 * 1024,
)
EPERM, ENOSYS, EAFNOSUPPORT = (errno.errorcode[e] for e in (errno.EPERM, errno.ENOSYS, errno.EAFNOSUPPORT))


@pytest.fixture(scope="module")
def work_root():
    # Not under pytest's tmp_path: that is mode 0700 root, which the sandbox uid cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="assistants-seccomp-test-"))
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cfg(work_root):
    return LocalConfig(runtime=Settings().sandbox_runtime, work_root=work_root)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def usable(cfg):
    reason = await check_bwrap(cfg)
    if reason:
        missing(f"local sandbox unusable: {reason}")
    if seccomp.host_arch() not in seccomp.AUDIT_ARCH:
        missing(f"no seccomp table for {platform.machine()}")
    return cfg


def run_sandboxed(cfg: LocalConfig, code: str, *, filtered: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `python -c code` in a fresh bwrap sandbox, with the filter unless told otherwise."""
    root = Path(tempfile.mkdtemp(dir=cfg.work_root))
    os.chmod(root, 0o711)
    for d in ("ctl", "data"):
        (root / d).mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(root / d, cfg.uid, cfg.uid)
    fd = seccomp.filter_fd() if filtered else None
    try:
        argv = bwrap_argv(cfg, LIMITS, root, str(cfg.runtime / "bin" / "python"), code, seccomp_fd=fd)
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            timeout=60,
            pass_fds=() if fd is None else (fd,),
            **preexec_user(cfg.uid),
        )
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)


# In the sandbox: `sc(name, *args)` makes the raw syscall and answers "ok" or the errno's name.
PRELUDE = r"""
import ctypes, errno, json, os, platform, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
X86 = platform.machine() == "x86_64"
NR = {  # (x86_64, aarch64), from the kernel's tables
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "kcmp": (312, 272), "keyctl": (250, 219),
    "io_uring_setup": (425, 425), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "name_to_handle_at": (303, 264), "bpf": (321, 280), "mount": (165, 40), "unshare": (272, 97),
    "setns": (308, 268), "clone": (56, 220), "clone3": (435, 435), "socket": (41, 198),
    "ioctl": (16, 29), "personality": (135, 92), "getpid": (39, 172), "modify_ldt": (154, None),
}
def sc(name, *args):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name][0 if X86 else 1]), *args)
    if r == -1:
        return errno.errorcode[ctypes.get_errno()]
    if name == "clone" and r == 0:
        os._exit(0)  # the child of a clone that went through
    if name in ("io_uring_setup", "perf_event_open", "userfaultfd", "socket"):
        os.close(r)
    return "ok"
buf = ctypes.create_string_buffer
out = {}
"""
EPILOGUE = "\nprint(json.dumps(out))\n"


def probe(cfg: LocalConfig, code: str, *, filtered: bool = True) -> dict[str, object]:
    proc = run_sandboxed(cfg, PRELUDE + code + EPILOGUE, filtered=filtered)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_filter_is_installed(usable):
    out = probe(
        usable,
        "out['status'] = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp')]",
    )
    assert out["status"] == ["2", "1"]  # mode filter, one filter (bwrap adds none of its own)


def test_other_processes_and_kernel_interfaces_refused(usable):
    out = probe(
        usable,
        r"""
pid = os.getpid()
a, b = buf(8), buf(8)
iov = lambda s: struct.pack("QQ", ctypes.addressof(s), 8)
local, remote = buf(iov(a)), buf(iov(b))
out["ptrace"] = sc("ptrace", 7, pid, 0, 0)  # PTRACE_CONT of a process we do not trace
out["process_vm_readv"] = sc("process_vm_readv", pid, local, 1, remote, 1, 0)
out["kcmp"] = sc("kcmp", pid, pid, 1, 0, 0)  # KCMP_VM
out["keyctl"] = sc("keyctl", 0, -4, 0)  # KEYCTL_GET_KEYRING_ID of the user keyring
out["io_uring_setup"] = sc("io_uring_setup", 4, buf(120))
attr = buf(128)
struct.pack_into("IIQ", attr, 0, 1, 112, 1)  # software task-clock, size VER5
struct.pack_into("Q", attr, 40, 1 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, exclude_hv
out["perf_event_open"] = sc("perf_event_open", attr, 0, -1, -1, 0)
out["userfaultfd"] = sc("userfaultfd", 1)  # UFFD_USER_MODE_ONLY: allowed unprivileged otherwise
handle = buf(struct.pack("Ii", 120, 0) + bytes(120))
out["name_to_handle_at"] = sc("name_to_handle_at", -100, b"/tmp", handle, buf(4), 0)
out["bpf"] = sc("bpf", 0, buf(128), 128)  # BPF_MAP_CREATE
out["mount"] = sc("mount", b"none", b"/tmp", b"tmpfs", 0, 0)
if X86:
    out["modify_ldt"] = sc("modify_ldt", 0, buf(16), 16)
""",
    )
    assert out == dict.fromkeys(out, EPERM)
    assert len(out) >= 10


def test_new_namespaces_refused(usable):
    out = probe(
        usable,
        r"""
CLONE_NEWUSER, CLONE_FILES, SIGCHLD = 0x10000000, 0x400, 17
out["unshare_user"] = sc("unshare", CLONE_NEWUSER)
out["unshare_files"] = sc("unshare", CLONE_FILES)
out["setns"] = sc("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0)
out["clone_user"] = sc("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
out["clone3"] = sc("clone3", 0, 0)
""",
    )
    assert out == {
        "unshare_user": EPERM,
        "unshare_files": EPERM,
        "setns": EPERM,
        "clone_user": EPERM,
        "clone3": ENOSYS,  # so glibc falls back to clone, whose flags the filter can read
    }


def test_socket_families_limited(usable):
    out = probe(
        usable,
        r"""
import socket
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_ALG, AF_VSOCK = 1, 2, 10, 16, 17, 38, 40
for name, args in {
    "unix": (AF_UNIX, 1, 0), "inet": (AF_INET, 2, 0), "inet6": (AF_INET6, 1, 0),
    "netlink_route": (AF_NETLINK, 3, 0),
    "netlink_audit": (AF_NETLINK, 3, 9), "netlink_uevent": (AF_NETLINK, 3, 15),
    "packet": (AF_PACKET, 3, 0), "alg": (AF_ALG, 5, 0), "vsock": (AF_VSOCK, 1, 0),
}.items():
    out[name] = sc("socket", *args)
out["ifaces"] = sorted(n for _, n in socket.if_nameindex())
""",
    )
    assert out == {
        "unix": "ok",
        "inet": "ok",
        "inet6": "ok",
        "netlink_route": "ok",
        "netlink_audit": EAFNOSUPPORT,
        "netlink_uevent": EAFNOSUPPORT,
        "packet": EAFNOSUPPORT,
        "alg": EAFNOSUPPORT,
        "vsock": EAFNOSUPPORT,
        "ifaces": ["lo"],
    }


def test_terminal_injection_and_personality_refused(usable):
    out = probe(
        usable,
        r"""
fd = os.open("/dev/null", os.O_RDWR)
out["tiocsti"] = sc("ioctl", fd, 0x5412, buf(b"x"))
out["tioclinux"] = sc("ioctl", fd, 0x541C, buf(b"\x00"))
out["fionread"] = sc("ioctl", fd, 0x541B, buf(4))  # an ordinary ioctl
out["no_aslr"] = sc("personality", 0x0040000)  # ADDR_NO_RANDOMIZE
out["query"] = sc("personality", 0xFFFFFFFF)
""",
    )
    assert out == {
        "tiocsti": EPERM,
        "tioclinux": EPERM,
        "fionread": errno.errorcode[errno.ENOTTY],
        "no_aslr": EPERM,
        "query": "ok",
    }


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 and i386 entries exist on x86_64 only")
def test_other_syscall_abis_cannot_bypass_the_table(usable):
    out = probe(
        usable,
        r"""
import mmap, subprocess, sys
r = libc.syscall(ctypes.c_long(0x40000000 | 39))
out["x32_getpid"] = "ok" if r != -1 else errno.errorcode[ctypes.get_errno()]
# i386 getpid through `int 0x80`, in a child: mov eax, 20; int 0x80; ret
child = r'''
import ctypes, mmap
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes.fromhex("b814000000cd80c3"))
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print(f())
'''
out["i386_getpid"] = subprocess.run([sys.executable, "-c", child], capture_output=True).returncode
""",
    )
    assert out == {"x32_getpid": EPERM, "i386_getpid": -31}  # SIGSYS: the process is killed


def test_normal_work_runs_under_the_filter(usable):
    proc = run_sandboxed(
        usable,
        r"""
import json, os, socket, subprocess, sys, threading, concurrent.futures, multiprocessing
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
status = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
a = np.random.default_rng(0).random((300, 300))
plt.plot(a[0]); plt.savefig("/tmp/x.png")
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    sums = list(ex.map(lambda i: float((a @ a)[i, i] > 0), range(8)))
sub = subprocess.run(["ls", "/mnt/data"], capture_output=True).returncode
with multiprocessing.get_context("fork").Pool(2) as pool:
    squares = pool.map(abs, [-1, -2, -3])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); conn, _ = srv.accept(); c.sendall(b"hi")
print(json.dumps([status, os.path.getsize("/tmp/x.png") > 0, sums, sub, squares, conn.recv(2).decode()]))
""",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [["2"], True, [1.0] * 8, 0, [1, 2, 3], "hi"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sbx(usable):
    s = await LocalSandboxProvider(usable, LIMITS).create()
    yield s
    await s.kill()


async def test_kernel_sessions_run_under_the_filter(sbx):
    ex = await sbx.run_code(
        "import ctypes, os\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')])\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x400), os.strerror(ctypes.get_errno()))"
    )
    assert ex.error is None, (ex.error, ex.stderr)
    assert ex.stdout.splitlines() == ["['2']", "-1 Operation not permitted"]


# The program itself, emulated: its decisions for both architectures, and its shape.


def emulate(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x45):
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: acc & k != 0}[code]
            pc += jt if hit else jf
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


ALLOW, KILL = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS
DENY, NOSYS, NOFAMILY = (seccomp.RET_ERRNO | e for e in (errno.EPERM, errno.ENOSYS, errno.EAFNOSUPPORT))


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_program_decisions(arch):
    prog = seccomp.filter_bytes(arch)
    a = seccomp.AUDIT_ARCH[arch]
    col = 0 if arch == "x86_64" else 1
    read, getpid = (0, 39) if arch == "x86_64" else (63, 172)

    def nr(pair):
        return pair[col]

    assert emulate(prog, read, a) == ALLOW
    assert emulate(prog, getpid, a) == ALLOW
    assert emulate(prog, getpid, 0x40000003) == KILL  # i386
    assert emulate(prog, getpid, 0x40000028) == KILL  # arm (AArch32)
    for name, pair in seccomp.DENIED.items():
        if nr(pair) is not None:
            assert emulate(prog, nr(pair), a) == DENY, name
    assert emulate(prog, nr(seccomp.CLONE3), a) == NOSYS
    thread_flags = 0x3D0F00  # what glibc's pthread_create passes
    assert emulate(prog, nr(seccomp.CLONE), a, (thread_flags,)) == ALLOW
    assert emulate(prog, nr(seccomp.CLONE), a, (0x10000000 | 17,)) == DENY
    assert emulate(prog, nr(seccomp.CLONE), a, (0x20000 | 17,)) == DENY
    assert emulate(prog, nr(seccomp.IOCTL), a, (0, 0x5412)) == DENY
    assert emulate(prog, nr(seccomp.IOCTL), a, (0, 0xFFFFFFFF_00005412)) == DENY
    assert emulate(prog, nr(seccomp.IOCTL), a, (0, 0x5401)) == ALLOW  # TCGETS
    assert emulate(prog, nr(seccomp.SOCKET), a, (2, 1, 0)) == ALLOW
    assert emulate(prog, nr(seccomp.SOCKET), a, (16, 3, 0)) == ALLOW
    assert emulate(prog, nr(seccomp.SOCKET), a, (16, 3, 9)) == NOFAMILY
    assert emulate(prog, nr(seccomp.SOCKET), a, (17, 3, 0)) == NOFAMILY
    assert emulate(prog, nr(seccomp.PERSONALITY), a, (0,)) == ALLOW
    assert emulate(prog, nr(seccomp.PERSONALITY), a, (0xFFFFFFFF,)) == ALLOW
    assert emulate(prog, nr(seccomp.PERSONALITY), a, (0x0040000,)) == DENY
    x32_read = 0x40000000
    assert emulate(prog, x32_read, a) == (DENY if arch == "x86_64" else ALLOW)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_program_shape(arch):
    prog = seccomp.filter_bytes(arch)
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096  # BPF_MAXINSNS
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    # First the architecture, killing any other; then the number.
    assert insns[:4] == [
        (0x20, 0, 0, 4),
        (0x15, 1, 0, seccomp.AUDIT_ARCH[arch]),
        (0x06, 0, 0, KILL),
        (0x20, 0, 0, 0),
    ]
    assert insns[-1][0] == 0x06  # no path runs off the end
    for pc, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump lands inside the program
            assert pc + 1 + max(jt, jf) < len(insns)
    returns = {k for code, _, _, k in insns if code == 0x06}
    assert returns == {ALLOW, KILL, DENY, NOSYS, NOFAMILY}
    with pytest.raises(ValueError):
        seccomp.filter_bytes("riscv64")


def test_numbers_match_the_kernel_headers():
    """Cross-checks both tables against the installed kernel headers (linux-libc-dev)."""
    x86 = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    generic = Path("/usr/include/asm-generic/unistd.h")  # arm64 uses the generic table
    if not (x86.exists() and generic.exists()):
        pytest.skip("kernel headers not installed")

    def table(path: Path) -> dict[str, int]:
        return {
            m[1]: int(m[2]) for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)", path.read_text())
        }

    tx, tg = table(x86), table(generic)
    names = {**seccomp.DENIED, "clone": seccomp.CLONE, "clone3": seccomp.CLONE3, "ioctl": seccomp.IOCTL}
    names |= {"socket": seccomp.SOCKET, "personality": seccomp.PERSONALITY}
    for name, (x, g) in names.items():
        assert (tx.get(name), tg.get(name)) == (x, g), name
