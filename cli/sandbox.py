"""`assistants sandbox run`: the operator's way to run code in the worker's sandbox, with the
Files store wired in (inputs by File id, outputs become Files of the project)."""

from __future__ import annotations

import argparse

import psycopg

from assistants.settings import get_settings


def run_sandbox(args: argparse.Namespace) -> int:
    from activities.sandbox.cli import run_sandbox_cli
    from assistants.files_store import FilesStore
    from assistants.keys import ensure_project
    from assistants.storage import make_storage
    from stack.connect import ensure_database

    settings = get_settings()
    with ensure_database(settings) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            project_id = ensure_project(conn, args.project)
            if args.files:  # outputs belong with the inputs' project
                row = conn.execute("SELECT project_id FROM files WHERE id = %s", (args.files[0],)).fetchone()
                project_id = row[0] if row else project_id
        store = FilesStore(None, make_storage(settings), settings.max_file_bytes, url=url)
        return run_sandbox_cli(args, source=store, sink=store, project_id=project_id)
