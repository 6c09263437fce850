"""/v1/vector_stores/{id}/file_batches: several files added at once. A batch's status and counts
are computed from its files on every read; cancelling stops the ingestions still running."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.types.json import Jsonb

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import bad_request
from api.vector_store_ops import (
    StatusFilter,
    add_files,
    cancel_ingestions,
    check_files,
    chunking,
    list_store_files,
    require_store,
    row_data,
)
from assistants.db import vector_stores as vsdb
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import now, public
from assistants.schemas import VectorStoreFileBatchCreate

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])


async def _present_batch(pool: DbPool, batch: dict[str, Any]) -> dict[str, Any]:
    async with pool.connection() as conn:
        counts = await vsdb.batch_counts(conn, batch["id"])
    obj = public(batch)
    obj["file_counts"] = counts
    if batch.get("_cancelled"):
        obj["status"] = "cancelled" if not counts["in_progress"] else "in_progress"
    elif counts["in_progress"]:
        obj["status"] = "in_progress"
    else:
        obj["status"] = "failed" if counts["total"] and counts["failed"] == counts["total"] else "completed"
    return obj


async def _require_batch(pool: DbPool, project: str, store_id: str, batch_id: str) -> dict[str, Any]:
    return await row_data(
        pool,
        "SELECT data FROM vector_store_file_batches WHERE id = %s AND vector_store_id = %s AND project_id = %s",
        (batch_id, store_id, project),
        "file batch",
        batch_id,
    )


@router.post("/{store_id}/file_batches")
async def create_file_batch(
    store_id: str,
    body: VectorStoreFileBatchCreate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
) -> dict[str, Any]:
    await require_store(pool, project, store_id)
    if (body.file_ids is None) == (body.files is None):
        raise bad_request("Provide exactly one of 'file_ids' or 'files'.", "file_ids")
    if body.files is not None:
        items = [
            (f.file_id, chunking(f.chunking_strategy, "files.chunking_strategy"), f.attributes)
            for f in body.files
        ]
    else:
        chunk = chunking(body.chunking_strategy)
        items = [(f, chunk, body.attributes) for f in body.file_ids or []]
    if not items:
        raise bad_request("A file batch needs at least one file.", "file_ids")
    seen: set[str] = set()
    items = [i for i in items if not (i[0] in seen or seen.add(i[0]))]  # type: ignore[func-returns-value]
    await check_files(pool, project, [i[0] for i in items])
    batch: dict[str, Any] = {
        "id": new_id("vsfb"),
        "object": "vector_store.files_batch",
        "created_at": now(),
        "vector_store_id": store_id,
        "status": "in_progress",
        "file_counts": {},
    }
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO vector_store_file_batches (id, project_id, vector_store_id, status, created_at, data)"
            " VALUES (%s, %s, %s, 'in_progress', %s, %s)",
            (batch["id"], project, store_id, batch["created_at"], Jsonb(batch)),
        )
    await add_files(pool, temporal, settings, project, store_id, items, batch_id=batch["id"])
    return await _present_batch(pool, batch)


@router.get("/{store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(store_id: str, batch_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    return await _present_batch(pool, await _require_batch(pool, project, store_id, batch_id))


@router.post("/{store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    store_id: str, batch_id: str, project: Project, pool: Pool, temporal: Temporal
) -> dict[str, Any]:
    await _require_batch(pool, project, store_id, batch_id)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE vector_store_file_batches SET status = 'cancelled', data = data || '{\"_cancelled\": true}'::jsonb"
                " WHERE id = %s RETURNING data",
                (batch_id,),
            )
        ).fetchone()
        pending = await (
            await conn.execute(
                "SELECT file_id FROM vector_store_files WHERE batch_id = %s AND status = 'in_progress'",
                (batch_id,),
            )
        ).fetchall()
    # Each ingestion marks its file cancelled as it stops; files already done stay done.
    await cancel_ingestions(temporal, store_id, [r["file_id"] for r in pending])
    assert row is not None  # _require_batch found it
    return await _present_batch(pool, row["data"])


@router.get("/{store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    store_id: str, batch_id: str, project: Project, pool: Pool, page: Listing, status: StatusFilter = None
) -> dict[str, Any]:
    await _require_batch(pool, project, store_id, batch_id)
    return await list_store_files(pool, project, store_id, page, status, batch_id)
