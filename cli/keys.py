"""`assistants keys create|list|revoke`. `create` prints the new key alone on its last line."""

from __future__ import annotations

import argparse
import sys

import psycopg

from assistants.keys import create_key, list_keys, revoke_key
from assistants.settings import get_settings


def run_keys(args: argparse.Namespace) -> int:
    from stack.connect import ensure_database

    with ensure_database(get_settings()) as url, psycopg.connect(url, autocommit=True) as conn:
        if args.keys_command == "create":
            created = create_key(conn, args.project, args.name)
            print(
                f"# key {created.id} for project {args.project} ({created.project_id}); it is shown only once"
            )  # noqa: T201
            print(created.key)  # noqa: T201
            return 0
        if args.keys_command == "list":
            for key_id, project, name, redacted, created_at, revoked_at in list_keys(conn):
                state = "revoked" if revoked_at else "active"
                print(f"{key_id}\t{project}\t{name or '-'}\t{redacted}\t{created_at}\t{state}")  # noqa: T201
            return 0
        if args.keys_command == "revoke":
            if revoke_key(conn, args.key_id):
                print(f"revoked {args.key_id}")  # noqa: T201
                return 0
            print(f"no active key {args.key_id}", file=sys.stderr)  # noqa: T201
            return 1
    return 2
