"""The host side of sandbox work dirs: reading and writing files in them, and removing orphans.

The work dir belongs to the sandbox uid, which can plant symlinks; we act as root, so every path
is walked with O_NOFOLLOW from a directory fd and only regular files are read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from activities.sandbox.base import WORK_DIR, FileInfo, SandboxError

log = logging.getLogger(__name__)

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


def safe_read(root: Path, rel: str, cap: int) -> bytes:
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
        shutil.rmtree(d, ignore_errors=True)


def default_work_root() -> Path:
    return Path(tempfile.gettempdir()) / "assistants-sandbox"
