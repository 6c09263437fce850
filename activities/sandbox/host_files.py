"""The host side of sandbox work dirs: their size quota, reading and writing files in them, and
removing orphans.

The work dir belongs to the sandbox uid, which can plant symlinks; we act as root, so every path
is walked with O_NOFOLLOW from a directory fd and only regular files are read.

Quota: where the worker may mount (root, or CAP_SYS_ADMIN), a sandbox's data dir is its own
tmpfs of `disk_bytes` and `disk_files` inodes, so a full /mnt/data is ENOSPC for the sandbox,
never a full host disk; its pages count against the sandbox's cgroup memory. Where it may not,
the data dir is a plain folder, bounded only per file by RLIMIT_FSIZE.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from activities.sandbox.base import WORK_DIR, FileInfo, SandboxError

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def mount_quota(path: Path, size: int, inodes: int, uid: int) -> bool:
    """Mount a tmpfs of `size` bytes and `inodes` inodes on `path`, owned by `uid`. False (and
    nothing mounted) where this process may not mount."""
    opts = f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={uid}"
    rc = _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts.encode())
    if rc != 0:
        log.debug("sandbox: no tmpfs quota on %s: %s", path, os.strerror(ctypes.get_errno()))
        return False
    return True


def unmount(path: Path) -> None:
    """Detach the quota tmpfs at `path` (its files go with it); a path that is no mount is fine."""
    _libc.umount2(os.fsencode(path), _MNT_DETACH)


def _is_mount(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


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


def safe_write(root: Path, rel: str, data: bytes, uid: int | None) -> None:
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


def safe_open(root: Path, rel: str) -> BinaryIO:
    """The regular file at `rel`, open for reading (never through a symlink, never a fifo)."""
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
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise FileNotFoundError(f"{WORK_DIR}/{rel} is not a regular file")
    return f


def safe_read(root: Path, rel: str, cap: int) -> bytes:
    with safe_open(root, rel) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise SandboxError(f"{WORK_DIR}/{rel} is larger than {cap} bytes")
    return data


def safe_list(root: Path) -> list[FileInfo]:
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
        if _is_mount(d / "data"):
            unmount(d / "data")
        shutil.rmtree(d, ignore_errors=True)


def default_work_root() -> Path:
    return Path(tempfile.gettempdir()) / "assistants-sandbox"
