"""/v1/vector_stores/{id}/files: the files of a store. Adding a file inserts its
vector_store.file (in_progress) and starts its IngestFileWorkflow; the workflow completes or
fails it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from psycopg.types.json import Jsonb

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import not_found
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
from assistants.db.pool import Pool as DbPool
from assistants.schemas import VectorStoreFileCreate, VectorStoreFileUpdate

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])


async def _get_file(pool: DbPool, project: str, store_id: str, file_id: str) -> dict[str, Any]:
    return await row_data(
        pool,
        "SELECT data FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s AND project_id = %s",
        (store_id, file_id, project),
        "file",
        file_id,
    )


@router.post("/{store_id}/files")
async def create_vector_store_file(
    store_id: str,
    body: VectorStoreFileCreate,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
) -> dict[str, Any]:
    await require_store(pool, project, store_id)
    await check_files(pool, project, [body.file_id], "file_id")
    [obj] = await add_files(
        pool,
        temporal,
        settings,
        project,
        store_id,
        [(body.file_id, chunking(body.chunking_strategy), body.attributes)],
    )
    return obj


@router.get("/{store_id}/files")
async def list_vector_store_files(
    store_id: str, project: Project, pool: Pool, page: Listing, status: StatusFilter = None
) -> dict[str, Any]:
    await require_store(pool, project, store_id)
    return await list_store_files(pool, project, store_id, page, status)


@router.get("/{store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    store_id: str, file_id: str, project: Project, pool: Pool
) -> dict[str, Any]:
    return await _get_file(pool, project, store_id, file_id)


@router.post("/{store_id}/files/{file_id}")
async def update_vector_store_file(
    store_id: str, file_id: str, body: VectorStoreFileUpdate, project: Project, pool: Pool
) -> dict[str, Any]:
    await _get_file(pool, project, store_id, file_id)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE vector_store_files SET data = data || %s WHERE vector_store_id = %s AND file_id = %s RETURNING data",
                (Jsonb({"attributes": body.attributes or {}}), store_id, file_id),
            )
        ).fetchone()
    if row is None:
        raise not_found("file", file_id)
    return row["data"]


@router.get("/{store_id}/files/{file_id}/content")
async def vector_store_file_content(
    store_id: str, file_id: str, project: Project, pool: Pool
) -> dict[str, Any]:
    await _get_file(pool, project, store_id, file_id)
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT text FROM file_texts WHERE file_id = %s", (file_id,))
        ).fetchone()
    data = [{"type": "text", "text": row["text"]}] if row else []
    return {"object": "vector_store.file_content.page", "data": data, "has_more": False, "next_page": None}


@router.delete("/{store_id}/files/{file_id}")
async def delete_vector_store_file(
    store_id: str, file_id: str, project: Project, pool: Pool, temporal: Temporal
) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "DELETE FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s AND project_id = %s RETURNING status",
                (store_id, file_id, project),
            )
        ).fetchone()
        if row is None:
            raise not_found("file", file_id)
        await conn.execute(
            "DELETE FROM vector_store_chunks WHERE vector_store_id = %s AND file_id = %s", (store_id, file_id)
        )
    if row["status"] == "in_progress":
        await cancel_ingestions(temporal, store_id, [file_id])
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
