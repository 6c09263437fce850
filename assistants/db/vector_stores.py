"""Vector stores, their files and batches: the SQL the API and the retrieval activities share.

`file_counts` and `usage_bytes` are never stored: they are counted from the file rows whenever a
store or batch is read, so they cannot drift from the truth.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb

from assistants.db.pool import Conn as DbConn
from assistants.db.pool import Pool as DbPool
from assistants.ids import derived_id
from assistants.objects import public

DAY = 86400
STATUSES = ("in_progress", "completed", "failed", "cancelled")


def file_row_id(vector_store_id: str, file_id: str) -> str:
    return derived_id("vsf", vector_store_id, file_id)


def ingest_workflow_id(vector_store_id: str, file_id: str) -> str:
    return f"ingest-{vector_store_id}-{file_id}"


def chunk_id(vector_store_id: str, file_id: str, index: int) -> str:
    return derived_id("chunk", vector_store_id, file_id, index)


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + int(r["n"])
    counts["total"] = sum(counts[s] for s in STATUSES)
    return counts


async def store_stats(conn: DbConn, store_ids: list[str]) -> dict[str, tuple[dict[str, int], int]]:
    """vector_store_id -> (file_counts, usage_bytes)."""
    rows = await (
        await conn.execute(
            "SELECT vector_store_id, status, count(*) AS n, coalesce(sum((data->>'usage_bytes')::bigint), 0) AS bytes"
            " FROM vector_store_files WHERE vector_store_id = ANY(%s) GROUP BY 1, 2",
            (store_ids,),
        )
    ).fetchall()
    out: dict[str, tuple[dict[str, int], int]] = {}
    for sid in store_ids:
        mine = [r for r in rows if r["vector_store_id"] == sid]
        out[sid] = (_counts(mine), sum(int(r["bytes"]) for r in mine))
    return out


def present_store(data: dict[str, Any], counts: dict[str, int], usage_bytes: int) -> dict[str, Any]:
    obj = public(data)
    obj["file_counts"] = counts
    obj["usage_bytes"] = usage_bytes
    expires_at = obj.get("expires_at")
    if expires_at is not None and expires_at <= int(time.time()):
        obj["status"] = "expired"
    else:
        obj["status"] = "in_progress" if counts["in_progress"] else "completed"
    return obj


async def present_stores(pool: DbPool, stores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not stores:
        return []
    async with pool.connection() as conn:
        stats = await store_stats(conn, [s["id"] for s in stores])
    return [present_store(s, *stats[s["id"]]) for s in stores]


async def batch_counts(conn: DbConn, batch_id: str) -> dict[str, int]:
    rows = await (
        await conn.execute(
            "SELECT status, count(*) AS n FROM vector_store_files WHERE batch_id = %s GROUP BY 1", (batch_id,)
        )
    ).fetchall()
    return _counts(list(rows))


async def touch_store(conn: DbConn, vector_store_id: str) -> None:
    """Mark the store active now; slide its expiry when it has `expires_after`."""
    ts = int(time.time())
    await conn.execute(
        "UPDATE vector_stores SET data = data || jsonb_build_object('last_active_at', %s::bigint,"
        " 'expires_at', CASE WHEN data->'expires_after' IS NULL OR data->'expires_after' = 'null'::jsonb THEN NULL"
        " ELSE %s::bigint + (data->'expires_after'->>'days')::bigint * %s END) WHERE id = %s",
        (ts, ts, DAY, vector_store_id),
    )


def file_object(
    vector_store_id: str,
    file_id: str,
    created_at: int,
    chunking: dict[str, Any],
    attributes: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "vector_store.file",
        "created_at": created_at,
        "usage_bytes": 0,
        "vector_store_id": vector_store_id,
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": chunking,
        "attributes": attributes or {},
    }


async def insert_files(
    conn: DbConn,
    project_id: str,
    vector_store_id: str,
    items: list[dict[str, Any]],
    batch_id: str | None = None,
) -> list[tuple[dict[str, Any], bool]]:
    """Insert vector_store.file rows (in_progress). A file already in the store is re-ingested
    unless it is in progress. Returns (object, needs_ingestion) in input order."""
    out = []
    for obj in items:
        row = await (
            await conn.execute(
                "INSERT INTO vector_store_files (id, project_id, vector_store_id, file_id, batch_id, status, created_at, data)"
                " VALUES (%s, %s, %s, %s, %s, 'in_progress', %s, %s)"
                " ON CONFLICT (vector_store_id, file_id) DO UPDATE SET status = 'in_progress', batch_id = EXCLUDED.batch_id,"
                "   data = EXCLUDED.data WHERE vector_store_files.status <> 'in_progress'"
                " RETURNING data",
                (
                    file_row_id(vector_store_id, obj["id"]),
                    project_id,
                    vector_store_id,
                    obj["id"],
                    batch_id,
                    obj["created_at"],
                    Jsonb(obj),
                ),
            )
        ).fetchone()
        if row is not None:
            out.append((row["data"], True))
        else:  # already being ingested: hand back the row as it is
            cur = await (
                await conn.execute(
                    "SELECT data FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s",
                    (vector_store_id, obj["id"]),
                )
            ).fetchone()
            out.append((cur["data"] if cur else obj, False))
    return out


async def set_file_status(
    conn: DbConn,
    vector_store_id: str,
    file_id: str,
    status: str,
    last_error: dict[str, Any] | None = None,
    *,
    only_in_progress: bool = True,
    **fields: Any,
) -> bool:
    cond = " AND status = 'in_progress'" if only_in_progress else ""
    cur = await conn.execute(
        "UPDATE vector_store_files SET status = %s, data = data || %s WHERE vector_store_id = %s AND file_id = %s"
        + cond,
        (status, Jsonb({"status": status, "last_error": last_error, **fields}), vector_store_id, file_id),
    )
    return cur.rowcount > 0
