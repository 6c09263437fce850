"""`assistants runs list` and `assistants usage`: what an operator asks of Postgres directly.

Both read the `runs` table (its `data` is the run object the API returns, usage included once a
run ends), from the database of the data dir's stack or DATABASE_URL.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from assistants.settings import get_settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# --project takes a project's name (as `assistants keys create --project` does) or its id.
_PROJECT = "(r.project_id = %s OR p.name = %s)"


def duration_s(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 15m, 2h, 1d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _age(seconds: int) -> str:
    """`42s`, `5m12s`, `3h04m`, `2d07h`: the two largest units."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _connect() -> psycopg.Connection[dict[str, Any]]:
    from stack.connect import database_url

    return psycopg.connect(database_url(get_settings()), autocommit=True, row_factory=dict_row)


def list_runs(conn: psycopg.Connection[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    now = int(time.time())
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if args.status:
        where.append("r.status = ANY(%s)")
        params.append(args.status)
    if args.project:
        where.append(_PROJECT)
        params += [args.project, args.project]
    if args.older_than is not None:
        where.append("r.created_at <= %s")
        params.append(now - int(args.older_than))
    params.append(args.limit)
    rows = conn.execute(
        "SELECT r.id, r.status, r.data->>'model' AS model, r.project_id, p.name AS project,"
        " r.thread_id, r.created_at FROM runs r LEFT JOIN projects p ON p.id = r.project_id"
        f" WHERE {' AND '.join(where)} ORDER BY r.created_at DESC, r.seq DESC LIMIT %s",
        params,
    ).fetchall()
    return [{**r, "age_seconds": max(0, now - int(r["created_at"]))} for r in rows]


def usage_by_day(conn: psycopg.Connection[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    since = int(time.time()) - args.days * 86400
    # A run's usage is set when it ends (null until then).
    where: list[str] = ["r.created_at >= %s", "jsonb_typeof(r.data->'usage') = 'object'"]
    params: list[Any] = [since]
    if args.project:
        where.append(_PROJECT)
        params += [args.project, args.project]
    return conn.execute(
        "SELECT to_char(to_timestamp(r.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,"
        " r.project_id, p.name AS project, r.data->>'model' AS model, count(*) AS runs,"
        " sum((r.data->'usage'->>'prompt_tokens')::bigint)::bigint AS prompt_tokens,"
        " sum((r.data->'usage'->>'completion_tokens')::bigint)::bigint AS completion_tokens,"
        " sum((r.data->'usage'->>'total_tokens')::bigint)::bigint AS total_tokens"
        f" FROM runs r LEFT JOIN projects p ON p.id = r.project_id WHERE {' AND '.join(where)}"
        " GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, 3, 4",
        params,
    ).fetchall()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def run_runs(args: argparse.Namespace) -> int:
    with _connect() as conn:
        runs = list_runs(conn, args)
    if args.json:
        print(json.dumps(runs, indent=2))  # noqa: T201
        return 0
    rows = [
        [
            r["id"],
            r["status"],
            r["model"],
            r["project"] or r["project_id"],
            r["thread_id"],
            _age(r["age_seconds"]),
        ]
        for r in runs
    ]
    print(_table(["ID", "STATUS", "MODEL", "PROJECT", "THREAD", "AGE"], rows))  # noqa: T201
    return 0


def run_usage(args: argparse.Namespace) -> int:
    with _connect() as conn:
        usage = usage_by_day(conn, args)
    if args.json:
        print(json.dumps(usage, indent=2))  # noqa: T201
        return 0
    keys = ["day", "project", "model", "runs", "prompt_tokens", "completion_tokens", "total_tokens"]
    print(_table([k.upper() for k in keys], [[u[k] for k in keys] for u in usage]))  # noqa: T201
    return 0
