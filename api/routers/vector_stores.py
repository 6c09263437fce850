"""/v1/vector_stores: stores, their files, file batches, and search.

Adding a file inserts its vector_store.file (in_progress) and starts its IngestFileWorkflow; the
workflow completes or fails it. Counts and usage are computed from the file rows on every read.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.search_sql import BadFilter, search_query
from api.deps import AppSettings, Listing, Pool, Project, Temporal
from api.errors import APIError, bad_request, not_found
from assistants.db import objects
from assistants.db import vector_stores as vsdb
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import now
from assistants.payloads import FileSearchInput, FileSearchOutput, IngestFileInput
from assistants.settings import Settings
from workflows.ingest import IngestFileWorkflow, VectorStoreSearchWorkflow
from workflows.ingest_options import SEARCH_WORKFLOW_TIMEOUT

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])
Attributes = dict[str, str | float | bool]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpiresAfter(Body):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(Body):
    name: str | None = None
    description: str | None = None
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    chunking_strategy: dict[str, Any] | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None


class VectorStoreUpdate(Body):
    name: str | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None


class FileAdd(Body):
    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class FileUpdate(Body):
    attributes: Attributes | None


class BatchFile(Body):
    file_id: str
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class BatchCreate(Body):
    file_ids: list[str] | None = Field(None, max_length=2000)
    files: list[BatchFile] | None = Field(None, max_length=2000)
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class SearchRanking(Body):
    ranker: str | None = None
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


class SearchBody(Body):
    query: str | list[str]
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: SearchRanking | None = None
    filters: dict[str, Any] | None = None
    rewrite_query: bool = False


# --- shared helpers (also used by messages / threads for attachments) --------------------------


def chunking(strategy: dict[str, Any] | None, param: str = "chunking_strategy") -> dict[str, Any]:
    """The stored (static) form of a chunking strategy; `auto` is 800 tokens with 400 overlap."""
    kind = (strategy or {}).get("type", "auto")
    if kind == "auto":
        return {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    static = (strategy or {}).get("static")
    if kind != "static" or not isinstance(static, dict):
        raise bad_request(
            "chunking_strategy must be {'type': 'auto'} or {'type': 'static', 'static': {...}}.", param
        )
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or not 100 <= size <= 4096:
        raise bad_request(
            "max_chunk_size_tokens must be an integer between 100 and 4096.",
            f"{param}.static.max_chunk_size_tokens",
        )
    if not isinstance(overlap, int) or overlap < 0 or overlap > size // 2:
        raise bad_request(
            "chunk_overlap_tokens must be a non-negative integer, at most half of max_chunk_size_tokens.",
            f"{param}.static.chunk_overlap_tokens",
        )
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


async def require_store(pool: DbPool, project: str, store_id: str) -> dict[str, Any]:
    obj = await objects.get(pool, "vector_stores", project, store_id)
    if obj is None:
        raise not_found("vector store", store_id)
    return obj


async def check_files(pool: DbPool, project: str, file_ids: list[str], param: str = "file_ids") -> None:
    if not file_ids:
        return
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM files WHERE id = ANY(%s) AND project_id = %s", (list(file_ids), project)
            )
        ).fetchall()
    missing = [f for f in file_ids if f not in {r["id"] for r in rows}]
    if missing:
        raise not_found("file", missing[0], param)


async def start_ingestion(
    temporal: Client, settings: Settings, pool: DbPool, project: str, files: list[dict[str, Any]]
) -> None:
    for f in files:
        static = f["chunking_strategy"]["static"]
        inp = IngestFileInput(
            project_id=project,
            vector_store_id=f["vector_store_id"],
            file_id=f["id"],
            max_chunk_size_tokens=static["max_chunk_size_tokens"],
            chunk_overlap_tokens=static["chunk_overlap_tokens"],
        )
        try:
            # A re-added file replaces a leftover run of the same ingestion (e.g. one still cancelling).
            await temporal.start_workflow(
                IngestFileWorkflow.run,
                inp,
                id=vsdb.ingest_workflow_id(inp.vector_store_id, inp.file_id),
                task_queue=settings.runs_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                memo={"project_id": project, "vector_store_id": inp.vector_store_id, "file_id": inp.file_id},
            )
        except RPCError as exc:
            log.warning("could not start ingestion of %s: %s", inp.file_id, exc)
            async with pool.connection() as conn:
                await vsdb.set_file_status(
                    conn,
                    inp.vector_store_id,
                    inp.file_id,
                    "failed",
                    {"code": "server_error", "message": "ingestion could not be started"},
                )


async def add_files(
    pool: DbPool,
    temporal: Client,
    settings: Settings,
    project: str,
    store_id: str,
    items: list[tuple[str, dict[str, Any], Attributes | None]],
    batch_id: str | None = None,
) -> list[dict[str, Any]]:
    """Add (file_id, chunking, attributes) items to a store and start their ingestion."""
    created = now()
    objs = [vsdb.file_object(store_id, fid, created, chunk, attrs) for fid, chunk, attrs in items]
    async with pool.connection() as conn, conn.transaction():
        rows = await vsdb.insert_files(conn, project, store_id, objs, batch_id)
        await vsdb.touch_store(conn, store_id)
    await start_ingestion(temporal, settings, pool, project, [obj for obj, start in rows if start])
    return [obj for obj, _ in rows]


async def create_store(
    pool: DbPool,
    temporal: Client,
    settings: Settings,
    project: str,
    *,
    name: str | None = None,
    file_ids: list[str] | None = None,
    chunking_strategy: dict[str, Any] | None = None,
    expires_after: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    chunk = chunking(chunking_strategy)
    file_ids = list(dict.fromkeys(file_ids or []))
    await check_files(pool, project, file_ids)
    created = now()
    obj: dict[str, Any] = {
        "id": new_id("vs"),
        "object": "vector_store",
        "created_at": created,
        "name": name or "",
        "usage_bytes": 0,
        "file_counts": {},
        "status": "completed",
        "last_active_at": created,
        "expires_after": expires_after,
        "expires_at": created + expires_after["days"] * vsdb.DAY if expires_after else None,
        "metadata": metadata or {},
    }
    if description is not None:
        obj["description"] = description
    await objects.insert(pool, "vector_stores", project, obj)
    if file_ids:
        await add_files(pool, temporal, settings, project, obj["id"], [(f, chunk, None) for f in file_ids])
    return (await vsdb.present_stores(pool, [obj]))[0]


def inline_store_specs(tool_resources: Any) -> list[Any]:
    """`tool_resources.file_search.vector_stores`: stores to create with the assistant or thread."""
    fs = tool_resources.file_search if tool_resources else None
    return list(fs.vector_stores or []) if fs else []


async def create_store_from_spec(
    pool: DbPool, temporal: Client, settings: Settings, project: str, spec: Any
) -> dict[str, Any]:
    return await create_store(
        pool,
        temporal,
        settings,
        project,
        file_ids=spec.file_ids,
        chunking_strategy=spec.chunking_strategy,
        metadata=spec.metadata,
    )


async def attach_files_to_thread(
    pool: DbPool,
    temporal: Client,
    settings: Settings,
    project: str,
    thread: dict[str, Any],
    file_ids: list[str],
) -> dict[str, Any]:
    """Message `attachments` with file_search: the files join the thread's vector store (one is
    created, expiring 7 days after last use, when the thread has none). Returns the thread."""
    file_ids = list(dict.fromkeys(file_ids))
    if not file_ids:
        return thread
    await check_files(pool, project, file_ids, "attachments")
    store_ids = ((thread.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or []
    if store_ids:
        await add_files(
            pool, temporal, settings, project, store_ids[0], [(f, chunking(None), None) for f in file_ids]
        )
        return thread
    store = await create_store(
        pool,
        temporal,
        settings,
        project,
        name=f"Vector store for {thread['id']}",
        file_ids=file_ids,
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    tool_resources = dict(thread.get("tool_resources") or {})
    tool_resources["file_search"] = {"vector_store_ids": [store["id"]]}
    patched = await objects.patch(pool, "threads", project, thread["id"], {"tool_resources": tool_resources})
    return patched or thread


def file_search_attachments(messages: list[Any]) -> list[str]:
    """File ids of `attachments` (and v1 `file_ids`) that ask for file_search, over MessageCreate bodies."""
    out: list[str] = []
    for m in messages:
        for a in m.attachments or []:
            if any(t.type == "file_search" for t in a.tools):
                out.append(a.file_id)
        out += list(m.file_ids or [])
    return out


# --- vector stores ------------------------------------------------------------------------------


@router.post("")
async def create_vector_store(
    body: VectorStoreCreate, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    return await create_store(
        pool,
        temporal,
        settings,
        project,
        name=body.name,
        file_ids=body.file_ids,
        chunking_strategy=body.chunking_strategy,
        expires_after=body.expires_after.model_dump() if body.expires_after else None,
        metadata=body.metadata,
        description=body.description,
    )


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
    await _cancel_ingestions(temporal, store_id, [r["file_id"] for r in rows])
    return {"id": store_id, "object": "vector_store.deleted", "deleted": True}


async def _cancel_ingestions(temporal: Client, store_id: str, file_ids: list[str]) -> None:
    for fid in file_ids:
        try:
            await temporal.get_workflow_handle(vsdb.ingest_workflow_id(store_id, fid)).cancel()
        except RPCError:
            pass  # already finished


# --- files in a store --------------------------------------------------------------------------


async def _list_files(
    pool: DbPool, project: str, store_id: str, page: Any, status: str | None, batch_id: str | None = None
) -> dict[str, Any]:
    conds, params = ["vector_store_id = %s", "project_id = %s"], [store_id, project]
    if status:
        conds.append("status = %s")
        params.append(status)
    if batch_id:
        conds.append("batch_id = %s")
        params.append(batch_id)
    desc = page.order == "desc"
    cursor_seq = "(SELECT seq FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s)"
    reverse = False
    if page.after:
        conds.append(f"seq {'<' if desc else '>'} {cursor_seq}")
        params += [store_id, page.after]
    if page.before:
        conds.append(f"seq {'>' if desc else '<'} {cursor_seq}")
        params += [store_id, page.before]
        desc, reverse = not desc, True
    query = (
        f"SELECT data FROM vector_store_files WHERE {' AND '.join(conds)}"  # noqa: S608 - fixed fragments only
        f" ORDER BY seq {'DESC' if desc else 'ASC'} LIMIT %s"
    )
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, [*params, page.limit + 1])).fetchall()  # type: ignore[arg-type]
    data = [r["data"] for r in rows[: page.limit]]
    if reverse:
        data.reverse()
    return objects.Page(data=data, has_more=len(rows) > page.limit).envelope()


StatusFilter = Annotated[
    Literal["in_progress", "completed", "failed", "cancelled"] | None, Query(alias="filter")
]


async def _get_file(pool: DbPool, project: str, store_id: str, file_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s AND project_id = %s",
                (store_id, file_id, project),
            )
        ).fetchone()
    if row is None:
        raise not_found("file", file_id)
    return row["data"]


@router.post("/{store_id}/files")
async def create_vector_store_file(
    store_id: str, body: FileAdd, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
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
    return await _list_files(pool, project, store_id, page, status)


@router.get("/{store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    store_id: str, file_id: str, project: Project, pool: Pool
) -> dict[str, Any]:
    return await _get_file(pool, project, store_id, file_id)


@router.post("/{store_id}/files/{file_id}")
async def update_vector_store_file(
    store_id: str, file_id: str, body: FileUpdate, project: Project, pool: Pool
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
        await _cancel_ingestions(temporal, store_id, [file_id])
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


# --- file batches ------------------------------------------------------------------------------


async def _present_batch(pool: DbPool, batch: dict[str, Any]) -> dict[str, Any]:
    async with pool.connection() as conn:
        counts = await vsdb.batch_counts(conn, batch["id"])
    obj = {k: v for k, v in batch.items() if not k.startswith("_")}
    obj["file_counts"] = counts
    if batch.get("_cancelled"):
        obj["status"] = "cancelled" if not counts["in_progress"] else "in_progress"
    elif counts["in_progress"]:
        obj["status"] = "in_progress"
    else:
        obj["status"] = "failed" if counts["total"] and counts["failed"] == counts["total"] else "completed"
    return obj


async def _require_batch(pool: DbPool, project: str, store_id: str, batch_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data FROM vector_store_file_batches WHERE id = %s AND vector_store_id = %s AND project_id = %s",
                (batch_id, store_id, project),
            )
        ).fetchone()
    if row is None:
        raise not_found("file batch", batch_id)
    return row["data"]


@router.post("/{store_id}/file_batches")
async def create_file_batch(
    store_id: str, body: BatchCreate, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
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
    await _cancel_ingestions(temporal, store_id, [r["file_id"] for r in pending])
    assert row is not None  # _require_batch found it
    return await _present_batch(pool, row["data"])


@router.get("/{store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    store_id: str, batch_id: str, project: Project, pool: Pool, page: Listing, status: StatusFilter = None
) -> dict[str, Any]:
    await _require_batch(pool, project, store_id, batch_id)
    return await _list_files(pool, project, store_id, page, status, batch_id)


# --- search ------------------------------------------------------------------------------------


async def run_search(temporal: Client, settings: Settings, inp: FileSearchInput) -> FileSearchOutput:
    try:
        return await temporal.execute_workflow(
            VectorStoreSearchWorkflow.run,
            inp,
            id=new_id("search"),
            task_queue=settings.runs_task_queue,
            execution_timeout=SEARCH_WORKFLOW_TIMEOUT,
        )
    except WorkflowFailureError as exc:
        cause = getattr(exc.cause, "cause", None)  # WorkflowFailure <- ActivityError <- ApplicationError
        if isinstance(cause, ApplicationError) and cause.type == "InvalidRequest":
            raise bad_request(cause.message, "filters") from None
        raise APIError(500, "The search failed.", type="server_error") from exc
    except RPCError as exc:
        raise APIError(503, "The search service is unavailable.", type="server_error") from exc


@router.post("/{store_id}/search")
async def search_vector_store(
    store_id: str, body: SearchBody, project: Project, pool: Pool, temporal: Temporal, settings: AppSettings
) -> dict[str, Any]:
    await require_store(pool, project, store_id)
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    if not any(q.strip() for q in queries):
        raise bad_request("query must not be empty.", "query")
    if body.filters is not None:
        try:
            search_query(body.filters)
        except BadFilter as exc:
            raise bad_request(str(exc), "filters") from None
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    out = await run_search(
        temporal,
        settings,
        FileSearchInput(
            project_id=project,
            query=" ".join(queries),
            vector_store_ids=[store_id],
            max_num_results=body.max_num_results,
            score_threshold=threshold,
            filters=body.filters,
        ),
    )
    data = [
        {
            "file_id": r.file_id,
            "filename": r.filename,
            "score": r.score,
            "attributes": r.attributes,
            "content": [{"type": "text", "text": r.text}],
        }
        for r in out.results
    ]
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
