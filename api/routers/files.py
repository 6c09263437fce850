"""/v1/files: upload (multipart), list, retrieve, delete, content (byte-exact, streamed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from psycopg.types.json import Jsonb

from api import limits
from api.deps import AppSettings, Pool, Project
from api.errors import APIError, bad_request, not_found
from api.file_storage import PURPOSES, storage_for
from assistants.db import objects
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_file_id
from assistants.objects import now
from assistants.storage import FileTooLarge

router = APIRouter(prefix="/v1/files", tags=["files"])


def too_large(limit: int) -> APIError:
    return APIError(
        413, f"File is too large: the limit is {limit} bytes.", param="file", code="file_too_large"
    )


async def require_file(pool: DbPool, project: str, file_id: str, param: str | None = None) -> dict[str, Any]:
    obj = await objects.get(pool, "files", project, file_id)
    # A file past its `expires_after` is gone, as OpenAI deletes it then.
    if obj is None or (obj.get("expires_at") is not None and obj["expires_at"] <= now()):
        raise not_found("file", file_id, param)
    return obj


def _check_expires_after(anchor: str | None, seconds: int | None) -> None:
    """`expires_after`: anchor `created_at` and 3600..2592000 seconds (one hour to 30 days)."""
    if anchor is None and seconds is None:
        return
    if anchor != "created_at":
        raise bad_request(
            f"Invalid expires_after[anchor] {anchor!r}: the only supported anchor is 'created_at'.",
            "expires_after.anchor",
            "invalid_value",
        )
    if seconds is None or not 3600 <= seconds <= 2_592_000:
        raise bad_request(
            "expires_after[seconds] must be between 3600 (1 hour) and 2592000 (30 days).",
            "expires_after.seconds",
            "invalid_value",
        )


@router.post("")
async def upload_file(
    request: Request,
    project: Project,
    pool: Pool,
    settings: AppSettings,
    file: Annotated[UploadFile, Form()],
    purpose: Annotated[str, Form()],
    expires_after_anchor: Annotated[str | None, Form(alias="expires_after[anchor]")] = None,
    expires_after_seconds: Annotated[int | None, Form(alias="expires_after[seconds]")] = None,
) -> dict[str, Any]:
    if purpose not in PURPOSES:
        raise bad_request(
            f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", "purpose", "invalid_value"
        )
    _check_expires_after(expires_after_anchor, expires_after_seconds)
    filename = PurePath((file.filename or "upload").replace("\\", "/")).name or "upload"
    file_id = new_file_id()
    storage = storage_for(settings)
    left = await limits.stored_bytes_left(pool, settings, project)  # 429 when the quota is spent
    cap = settings.max_file_bytes if left is None else min(settings.max_file_bytes, left)
    try:
        size = await asyncio.to_thread(storage.put, project, file_id, file.file, cap)
    except FileTooLarge:
        if cap < settings.max_file_bytes:
            raise limits.storage_full(settings, project) from None
        raise too_large(settings.max_file_bytes) from None
    created = now()
    obj = {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": created + expires_after_seconds
        if expires_after_anchor == "created_at" and expires_after_seconds
        else None,
    }
    try:
        async with pool.connection() as conn, conn.transaction():
            # Checked again under a per-project lock: concurrent uploads cannot overrun the quota.
            await limits.reserve_stored_bytes(conn, settings, project, size)
            await conn.execute(
                "INSERT INTO files (id, project_id, purpose, created_at, data) VALUES (%s, %s, %s, %s, %s)",
                (file_id, project, purpose, created, Jsonb(obj)),
            )
    except BaseException:
        await asyncio.to_thread(storage.delete, project, file_id)
        raise
    return obj


@router.get("")
async def list_files(
    project: Project,
    pool: Pool,
    purpose: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    where: dict[str, Any] = {"purpose": purpose} if purpose else {}
    page = await objects.list_page(pool, "files", project, limit=limit, order=order, after=after, **where)
    return page.envelope()


@router.get("/{file_id}")
async def retrieve_file(file_id: str, project: Project, pool: Pool) -> dict[str, Any]:
    return await require_file(pool, project, file_id)


@router.delete("/{file_id}")
async def delete_file(file_id: str, project: Project, pool: Pool, settings: AppSettings) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "DELETE FROM files WHERE id = %s AND project_id = %s RETURNING id", (file_id, project)
            )
        ).fetchone()
        if row is None:
            raise not_found("file", file_id)
        # A deleted file leaves every store it was in (its chunks could no longer be cited).
        await conn.execute(
            "DELETE FROM vector_store_chunks WHERE file_id = %s AND project_id = %s", (file_id, project)
        )
        await conn.execute(
            "DELETE FROM vector_store_files WHERE file_id = %s AND project_id = %s", (file_id, project)
        )
    await asyncio.to_thread(storage_for(settings).delete, project, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/{file_id}/content")
async def file_content(
    file_id: str, project: Project, pool: Pool, settings: AppSettings
) -> StreamingResponse:
    obj = await require_file(pool, project, file_id)
    chunks: Iterator[bytes] = storage_for(settings).iter_bytes(project, file_id)
    try:  # read the first chunk before answering, so a missing object is a 404, not a broken 200
        first = await asyncio.to_thread(next, chunks, b"")
    except FileNotFoundError:
        raise not_found("file content", file_id) from None

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        while chunk := await asyncio.to_thread(next, chunks, b""):
            yield chunk

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "content-length": str(obj["bytes"]),
            "content-disposition": 'attachment; filename="{}"'.format(obj["filename"].replace('"', "")),
        },
    )
