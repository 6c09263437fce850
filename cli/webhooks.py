"""`assistants webhooks create|list|delete`: operator access to a project's webhook endpoints.

`create` prints the endpoint as one JSON line, last, with its `signing_secret` (shown only once).
`list` prints one JSON line per endpoint (no secrets).
"""

from __future__ import annotations

import argparse
import json
import sys

import psycopg
from psycopg.types.json import Jsonb

from assistants.ids import new_id
from assistants.keyring import Keyring, load_keyring
from assistants.keys import ensure_project
from assistants.objects import now
from assistants.settings import get_settings
from assistants.webhooks import RUN_EVENT_TYPES, endpoint_object, new_secret, seal_secret, url_problem


def create_webhook(conn: psycopg.Connection, project: str, url: str, keyring: Keyring | None) -> dict:  # type: ignore[type-arg]
    problem = url_problem(url)
    if problem:
        raise ValueError(problem)
    project_id = ensure_project(conn, project)
    secret = new_secret()
    types = list(RUN_EVENT_TYPES)
    obj = endpoint_object(new_id("wh"), url=url, event_types=types, name="", secret=secret, created_at=now())
    conn.execute(
        "INSERT INTO webhooks (id, project_id, url, secret, event_types, created_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            obj["id"],
            project_id,
            url,
            seal_secret(keyring, obj["id"], secret),
            types,
            obj["created_at"],
            Jsonb(obj),
        ),
    )
    return {**obj, "signing_secret": secret}


def run_webhooks(args: argparse.Namespace) -> int:
    from stack.connect import apply_migrations, ensure_database

    with ensure_database(get_settings()) as url, psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(url)  # the tables may be newer than the running stack's code
        if args.webhooks_command == "create":
            try:
                created = create_webhook(conn, args.project, args.url, load_keyring(get_settings()))
            except ValueError as exc:
                print(f"invalid webhook URL {args.url!r}: {exc}", file=sys.stderr)  # noqa: T201
                return 2
            print(
                f"# webhook {created['id']} for project {args.project}; its signing secret is shown only once"
            )  # noqa: T201
            print(json.dumps(created))  # noqa: T201
            return 0
        if args.webhooks_command == "list":
            rows = conn.execute(
                "SELECT w.data FROM webhooks w JOIN projects p ON p.id = w.project_id WHERE p.name = %s ORDER BY w.seq",
                (args.project,),
            ).fetchall()
            for (data,) in rows:
                print(json.dumps(data))  # noqa: T201
            return 0
        if args.webhooks_command == "delete":
            if conn.execute("DELETE FROM webhooks WHERE id = %s", (args.webhook_id,)).rowcount:
                print(f"deleted {args.webhook_id}")  # noqa: T201
                return 0
            print(f"no webhook {args.webhook_id}", file=sys.stderr)  # noqa: T201
            return 1
    return 2
