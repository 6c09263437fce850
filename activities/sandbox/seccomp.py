"""The local sandbox's seccomp filter: a deny-list in the style of Docker's and Flatpak's default
profiles, compiled here to classic BPF (no libseccomp) and handed to `bwrap --seccomp FD`.

What it refuses, with EPERM (a clean error, never a kill): kernel-wide or privileged interfaces
(mount and the new mount API, chroot, modules, kexec, reboot, swap, clocks, quotas, acct, syslog),
looking into other processes (ptrace, process_vm_*, kcmp, pidfd_getfd), large attack surfaces an
unprivileged tenant does not need (bpf, perf_event_open, userfaultfd, io_uring, keyrings,
open_by_handle_at, fanotify, modify_ldt, NUMA page placement), and new namespaces (unshare,
setns, clone with a CLONE_NEW* flag). clone3 answers ENOSYS, because its flags sit behind a
pointer the filter cannot read; glibc then falls back to clone. ioctl TIOCSTI/TIOCLINUX (typing
into a terminal), and personality other than Docker's allowed values (no ASLR switch-off), are
refused. socket() is limited to AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE (what
`if_nameindex` needs); other families answer EAFNOSUPPORT, as under Flatpak.

Any architecture other than the host's (the i386 `int 0x80` entry on x86_64, AArch32 on arm64)
kills the process, so the table cannot be sidestepped; so do x32 numbers on x86_64 (EPERM). Every
branch that decides on the syscall number alone is constant per number, so the kernel's seccomp
cache (5.11+) lets the common syscalls skip the program entirely.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian).
_NR, _ARCH = 0, 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i  # the low 32 bits: every argument checked here is an int or unsigned int


AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

# name: (x86_64, aarch64); None where the architecture has no such call.
DENIED: dict[str, tuple[int | None, int | None]] = {
    # mounts and the root
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    # namespaces (clone is checked on its flags below)
    "unshare": (272, 97),
    "setns": (308, 268),
    # other processes
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "process_madvise": (440, 440),
    "pidfd_getfd": (438, 438),
    "kcmp": (312, 272),
    # the kernel itself
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "syslog": (103, 116),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "adjtimex": (159, 171),
    "clock_adjtime": (305, 266),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "vhangup": (153, 58),
    "nfsservctl": (180, 42),
    "lookup_dcookie": (212, 18),
    "uselib": (134, None),
    "ioperm": (173, None),
    "iopl": (172, None),
    "modify_ldt": (154, None),
    # large attack surfaces
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "fanotify_init": (300, 262),
    # NUMA placement: changes where pages live, needs CAP_SYS_NICE under Docker; reading stays allowed
    "mbind": (237, 235),
    "set_mempolicy": (238, 237),
    "migrate_pages": (256, 238),
    "move_pages": (279, 239),
    "set_mempolicy_home_node": (450, 450),
}
# Checked on their arguments.
CLONE = (56, 220)
CLONE3 = (435, 435)
IOCTL = (16, 29)
SOCKET = (41, 198)
PERSONALITY = (135, 92)

CLONE_NEW_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (NEWTIME: clone3 only)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
# PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query): Docker's list.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


class _Asm:
    """A straight-line cBPF program with forward jumps to labels, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (code, jt, jf, k) in enumerate(self.code):
            offs = []
            for j in (jt, jf):
                off = j if isinstance(j, int) else self.labels[j] - pc - 1
                if not 0 <= off <= 255:
                    raise ValueError(f"jump out of range at {pc}: {off}")
                offs.append(off)
            out += struct.pack("<HBBI", code, offs[0], offs[1], k)
        return bytes(out)


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def filter_bytes(arch: str | None = None) -> bytes:
    """The filter for `arch` (default: this host's) as an array of `struct sock_filter`."""
    arch = arch or host_arch()
    if arch not in AUDIT_ARCH:
        raise ValueError(f"no seccomp syscall table for {arch}")
    col = 0 if arch == "x86_64" else 1
    deny = RET_ERRNO | errno.EPERM
    a = _Asm()
    a.op(_LD_W_ABS, _ARCH)
    a.op(_JEQ, AUDIT_ARCH[arch], jt=1)
    a.op(_RET, RET_KILL_PROCESS)
    a.op(_LD_W_ABS, _NR)
    if arch == "x86_64":
        a.op(_JGE, X32_SYSCALL_BIT, jt="deny")
    for nrs in DENIED.values():
        nr = nrs[col]
        if nr is not None:
            a.op(_JEQ, nr, jt="deny")
    a.op(_JEQ, CLONE3[col], jt="enosys")
    a.op(_JEQ, CLONE[col], jt="clone")
    a.op(_JEQ, IOCTL[col], jt="ioctl")
    a.op(_JEQ, SOCKET[col], jt="socket")
    a.op(_JEQ, PERSONALITY[col], jt="personality")
    a.op(_RET, RET_ALLOW)

    a.label("clone")
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JSET, CLONE_NEW_FLAGS, jt="deny")
    a.op(_RET, RET_ALLOW)

    a.label("ioctl")  # the request is an unsigned int: only its low 32 bits reach the driver
    a.op(_LD_W_ABS, _arg_lo(1))
    a.op(_JEQ, TIOCSTI, jt="deny")
    a.op(_JEQ, TIOCLINUX, jt="deny")
    a.op(_RET, RET_ALLOW)

    a.label("socket")
    a.op(_LD_W_ABS, _arg_lo(0))
    for family in (AF_UNIX, AF_INET, AF_INET6):
        a.op(_JEQ, family, jt="allow")
    a.op(_JEQ, AF_NETLINK, jf="nofamily")
    a.op(_LD_W_ABS, _arg_lo(2))
    a.op(_JEQ, NETLINK_ROUTE, jt="allow")
    a.label("nofamily")
    a.op(_RET, RET_ERRNO | errno.EAFNOSUPPORT)

    a.label("personality")
    a.op(_LD_W_ABS, _arg_lo(0))
    for value in PERSONALITIES:
        a.op(_JEQ, value, jt="allow")

    a.label("deny")
    a.op(_RET, deny)
    a.label("enosys")
    a.op(_RET, RET_ERRNO | errno.ENOSYS)
    a.label("allow")
    a.op(_RET, RET_ALLOW)
    return a.assemble()


def filter_fd(arch: str | None = None) -> int:
    """A new fd (close-on-exec, at offset 0) holding the filter, for `pass_fds` and `--seccomp`;
    the caller closes it once bwrap has started (bwrap reads it before running anything)."""
    fd = os.memfd_create("assistants-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, filter_bytes(arch))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def bwrap_seccomp_args(fd: int) -> list[str]:
    return ["--seccomp", str(fd)]
