"""/v1/vector_stores: the stores themselves. Counts and usage are computed from the file rows on
every read (assistants/db/vector_stores.py); files, file batches and search have their own
routers (vector_store_files, vector_store_file_batches, vector_store_search)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import not_found
from api.vector_store_ops import cancel_ingestions, create_store, require_store
from assistants.db import objects
from assistants.db import vector_stores as vsdb
from assistants.objects import now
from assistants.schemas import VectorStoreCreate, VectorStoreUpdate

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])


@router.post("")
async def create_vector_store(
    body: VectorStoreCreate, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    # The body's fields are create_store's keywords (expires_after dumped to its stored dict).
    return await create_store(pool, temporal, settings, project, **body.model_dump())


@router.get("")
async def list_vector_stores(project: Project, pool: Pool, page: Listing) -> dict[str, Any]:
    result = await objects.list_page(pool, "vector_stores", project, **page.kwargs())  # type: ignore[arg-type]
    result.data = await vsdb.present_stores(pool, result.data)
    return result.envelope()


@router.get("/{store_id}")
async def retrieve_vector_store(store_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    return (await vsdb.present_stores(pool, [await require_store(pool, project, store_id)]))[0]


@router.post("/{store_id}")
async def modify_vector_store(
    store_id: str, body: VectorStoreUpdate, project: Project, pool: Pool
) -> dict[str, Any]:
    store = await require_store(pool, project, store_id)
    fields: dict[str, Any] = {}
    if "name" in body.model_fields_set:
        fields["name"] = body.name or ""
    if "metadata" in body.model_fields_set:
        fields["metadata"] = body.metadata or {}
    if "expires_after" in body.model_fields_set:
        exp = body.expires_after.model_dump() if body.expires_after else None
        fields["expires_after"] = exp
        fields["expires_at"] = store.get("last_active_at", now()) + exp["days"] * vsdb.DAY if exp else None
    obj = await objects.patch(pool, "vector_stores", project, store_id, fields)
    if obj is None:
        raise not_found("vector store", store_id)
    return (await vsdb.present_stores(pool, [obj]))[0]


@router.delete("/{store_id}")
async def delete_vector_store(
    store_id: str, project: Project, pool: Pool, temporal: Temporal
) -> dict[str, Any]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT file_id FROM vector_store_files WHERE vector_store_id = %s AND project_id = %s AND status = 'in_progress'",
                (store_id, project),
            )
        ).fetchall()
    if not await objects.delete(pool, "vector_stores", project, store_id):
        raise not_found("vector store", store_id)
    await cancel_ingestions(temporal, store_id, [r["file_id"] for r in rows])
    return {"id": store_id, "object": "vector_store.deleted", "deleted": True}
