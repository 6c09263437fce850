"""A database for CLI commands (``assistants keys create``), whether or not ``assistants up`` runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from assistants.settings import Settings
from stack.postgres import DB_NAME, DB_USER, EmbeddedPostgres, running_postmaster
from stack.processes import pid_alive

log = logging.getLogger(__name__)


class DatabaseNotRunning(RuntimeError):
    pass


def database_url(settings: Settings) -> str:
    """DATABASE_URL, else the URL of the running stack (or embedded Postgres) of the data dir."""
    if settings.database_url:
        return settings.database_url
    data_dir = settings.resolved_data_dir
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
    except (OSError, ValueError):
        stack = {}
    supervisor_pid = int(stack.get("supervisor_pid") or 0)
    if stack.get("database_url") and supervisor_pid > 0 and pid_alive(supervisor_pid):
        return str(stack["database_url"])
    pg = EmbeddedPostgres(data_dir)
    _, port = running_postmaster(pg.pgdata)
    if port is not None and pg.password_file.exists():
        return f"postgresql://{DB_USER}:{pg.password()}@127.0.0.1:{port}/{DB_NAME}"
    raise DatabaseNotRunning(f"no running database for {data_dir}; start `assistants up` or set DATABASE_URL")


@contextmanager
def ensure_database(settings: Settings) -> Iterator[str]:
    """Yield a database URL; starts the data dir's embedded Postgres for the duration if needed."""
    try:
        url = database_url(settings)
    except DatabaseNotRunning:
        pass
    else:
        yield url
        return
    pg = EmbeddedPostgres(settings.resolved_data_dir, settings.pg_port, settings.pg_shared_buffers)
    url = pg.start()
    try:
        apply_migrations(url)
        yield url
    finally:
        pg.stop()


def apply_migrations(database_url: str) -> None:
    try:
        from assistants.db.migrate import apply_migrations as apply
    except ModuleNotFoundError as e:  # the db package is written in parallel; never hide other import errors
        if e.name not in ("assistants.db", "assistants.db.migrate"):
            raise
        log.warning("assistants.db.migrate not found; skipping migrations")
        return
    apply(database_url)
