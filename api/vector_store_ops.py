"""Vector store operations the routers share: creating stores, checking and adding files (which
starts their IngestFileWorkflow), cancelling ingestions, and listing a store's files.

The assistants, threads and messages routers create stores from inline `tool_resources` and
attach message files through these; the vector store routers build on them too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import Query
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.errors import bad_request, not_found
from assistants.db import objects
from assistants.db import vector_stores as vsdb
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_id
from assistants.objects import now
from assistants.payloads import IngestFileInput
from assistants.schemas import Attributes
from assistants.settings import Settings
from workflows.ingest import IngestFileWorkflow

log = logging.getLogger(__name__)
StatusFilter = Annotated[
    Literal["in_progress", "completed", "failed", "cancelled"] | None, Query(alias="filter")
]


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


async def row_data(
    pool: DbPool, sql: str, params: tuple[Any, ...], kind: str, object_id: str
) -> dict[str, Any]:
    """The `data` of the row `sql` selects; 404 (`kind` `object_id` not found) when there is none."""
    async with pool.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()  # type: ignore[arg-type]
    if row is None:
        raise not_found(kind, object_id)
    return row["data"]


async def check_files(pool: DbPool, project: str, file_ids: list[str], param: str = "file_ids") -> None:
    if not file_ids:
        return
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM files WHERE id = ANY(%s) AND project_id = %s"
                " AND coalesce((data->>'expires_at')::bigint > %s, true)",  # an expired file is gone
                (list(file_ids), project, now()),
            )
        ).fetchall()
    missing = [f for f in file_ids if f not in {r["id"] for r in rows}]
    if missing:
        raise not_found("file", missing[0], param)


async def check_stores(pool: DbPool, project: str, store_ids: list[str], param: str) -> None:
    """Every id is a vector store of this project (a foreign or unknown one is a 404, never stored)."""
    if not store_ids:
        return
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM vector_stores WHERE id = ANY(%s) AND project_id = %s",
                (list(store_ids), project),
            )
        ).fetchall()
    missing = [s for s in store_ids if s not in {r["id"] for r in rows}]
    if missing:
        raise not_found("vector store", missing[0], param)


async def refuse_expired_stores(
    pool: DbPool,
    project: str,
    store_ids: list[str],
    param: str | None = "tool_resources.file_search.vector_store_ids",
) -> None:
    """A run cannot search a vector store past its `expires_at` (OpenAI answers 400 too)."""
    if not store_ids:
        return
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT id FROM vector_stores WHERE id = ANY(%s) AND project_id = %s"
                " AND (data->>'expires_at')::bigint <= %s LIMIT 1",
                (list(store_ids), project, now()),
            )
        ).fetchone()
    if row is not None:
        raise bad_request(
            f"Vector store {row['id']} has expired (its expires_after passed) and can no longer be searched.",
            param,
            "vector_store_expired",
        )


async def check_tool_resources(pool: DbPool, project: str, tool_resources: Any) -> None:
    """The file and vector store ids a `tool_resources` names belong to this project."""
    if tool_resources is None:
        return
    if tool_resources.code_interpreter is not None:
        await check_files(
            pool,
            project,
            list(tool_resources.code_interpreter.file_ids),
            "tool_resources.code_interpreter.file_ids",
        )
    if tool_resources.file_search is not None:
        await check_stores(
            pool,
            project,
            list(tool_resources.file_search.vector_store_ids),
            "tool_resources.file_search.vector_store_ids",
        )
        for spec in inline_store_specs(tool_resources):
            await check_files(
                pool, project, spec.file_ids, "tool_resources.file_search.vector_stores.file_ids"
            )


async def check_attachments(
    pool: DbPool, project: str, messages: list[Any], param: str = "attachments"
) -> None:
    """Every file a message refers to (attachments for any tool, v1 `file_ids`, `image_file`
    content parts) belongs to this project."""
    ids = [a.file_id for m in messages for a in (m.attachments or [])]
    ids += [f for m in messages for f in (m.file_ids or [])]
    await check_files(pool, project, list(dict.fromkeys(ids)), param)
    images = [
        p.image_file.file_id
        for m in messages
        if not isinstance(m.content, str)
        for p in m.content
        if p.type == "image_file"
    ]
    await check_files(pool, project, list(dict.fromkeys(images)), param.replace("attachments", "content"))


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
    # Only a live store can take the files; a deleted one is replaced by a new store below.
    live = await objects.get(pool, "vector_stores", project, store_ids[0]) if store_ids else None
    if live is not None:
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


async def cancel_ingestions(temporal: Client, store_id: str, file_ids: list[str]) -> None:
    for fid in file_ids:
        try:
            await temporal.get_workflow_handle(vsdb.ingest_workflow_id(store_id, fid)).cancel()
        except RPCError:
            pass  # already finished


async def list_store_files(
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
