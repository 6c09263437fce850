"""/v1/uploads: a File sent in parts (create, add part, complete, cancel), as OpenAI's Uploads API.

Each part streams to storage (local disk or S3) as its own object, bounded by
`upload_part_max_bytes`; complete streams the listed parts, in order, into one new File and
removes the parts. Parts count in the project's stored bytes until then. A pending upload past
its `expires_at` is `expired` the next time it is touched (its parts removed then), and pending
uploads of the project that expired are swept whenever it creates a new one.

This module owns the `uploads` and `upload_parts` tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from psycopg.types.json import Jsonb

from api import limits
from api.deps import AppSettings, Pool, Project
from api.errors import APIError, bad_request, not_found
from api.file_storage import PURPOSES, storage_for
from assistants.db.pool import Pool as DbPool
from assistants.ids import new_file_id, new_id
from assistants.objects import now
from assistants.schemas import UploadComplete, UploadCreate
from assistants.settings import Settings
from assistants.storage import FileStorage, FileTooLarge
from assistants.storage.base import ChainedReader

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])


def _not_pending(upload: dict[str, Any], action: str) -> APIError:
    return bad_request(
        f"Upload {upload['id']} is {upload['status']}: only a pending upload can {action}.",
        None,
        "upload_not_pending",
    )


def _part_too_large(settings: Settings) -> APIError:
    return APIError(
        413,
        f"Upload part is too large: a part holds at most {settings.upload_part_max_bytes} bytes.",
        param="data",
        code="part_too_large",
    )


async def _remove_parts(pool: DbPool, storage: FileStorage, project: str, part_ids: list[str]) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM upload_parts WHERE id = ANY(%s)", (part_ids,))
    for part_id in part_ids:
        await asyncio.to_thread(storage.delete, project, part_id)


async def _expire(pool: DbPool, settings: Settings, project: str, upload_ids: list[str]) -> None:
    """Mark pending uploads past their `expires_at` expired and remove their parts."""
    async with pool.connection() as conn, conn.transaction():
        rows = await (
            await conn.execute(
                "UPDATE uploads SET status = 'expired', data = data || '{\"status\": \"expired\"}'"
                " WHERE id = ANY(%s) AND project_id = %s AND status = 'pending' AND expires_at <= %s"
                " RETURNING id",
                (upload_ids, project, now()),
            )
        ).fetchall()
        expired = [r["id"] for r in rows]
        parts = await (
            await conn.execute("SELECT id FROM upload_parts WHERE upload_id = ANY(%s)", (expired,))
        ).fetchall()
    await _remove_parts(pool, storage_for(settings), project, [p["id"] for p in parts])


async def _require(pool: DbPool, settings: Settings, project: str, upload_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT data, status, expires_at FROM uploads WHERE id = %s AND project_id = %s",
                (upload_id, project),
            )
        ).fetchone()
    if row is None:
        raise not_found("upload", upload_id)
    upload: dict[str, Any] = row["data"]
    if row["status"] == "pending" and row["expires_at"] <= now():  # the columns are the truth
        await _expire(pool, settings, project, [upload_id])
        upload = {**upload, "status": "expired"}
    return upload


@router.post("")
async def create_upload(
    body: UploadCreate, project: Project, pool: Pool, settings: AppSettings
) -> dict[str, Any]:
    if body.purpose not in PURPOSES:
        raise bad_request(
            f"'{body.purpose}' is not one of {list(PURPOSES)} - 'purpose'", "purpose", "invalid_value"
        )
    if body.bytes > settings.upload_max_bytes:
        raise bad_request(
            f"An upload holds at most {settings.upload_max_bytes} bytes; got bytes={body.bytes}.",
            "bytes",
            "invalid_value",
        )
    async with pool.connection() as conn:
        stale = await (
            await conn.execute(
                "SELECT id FROM uploads WHERE project_id = %s AND status = 'pending' AND expires_at <= %s",
                (project, now()),
            )
        ).fetchall()
    if stale:
        await _expire(pool, settings, project, [r["id"] for r in stale])
    left = await limits.stored_bytes_left(pool, settings, project)  # 429 when the quota is spent
    if left is not None and body.bytes > left:
        raise limits.storage_full(settings, project)
    created = now()
    upload = {
        "id": new_id("upload"),
        "object": "upload",
        "bytes": body.bytes,
        "created_at": created,
        "expires_at": created + settings.upload_expires_seconds,
        "filename": PurePath(body.filename.replace("\\", "/")).name or "upload",
        "purpose": body.purpose,
        "status": "pending",
        "file": None,
    }
    # Kept beside the public shape: what the File gets on complete.
    internal = {
        "_mime_type": body.mime_type,
        "_file_expires_after": body.expires_after.seconds if body.expires_after else None,
    }
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO uploads (id, project_id, status, created_at, expires_at, data)"
            " VALUES (%s, %s, 'pending', %s, %s, %s)",
            (upload["id"], project, created, upload["expires_at"], Jsonb({**upload, **internal})),
        )
    return upload


def _public(upload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in upload.items() if not k.startswith("_")}


@router.post("/{upload_id}/parts")
async def add_part(
    upload_id: str,
    project: Project,
    pool: Pool,
    settings: AppSettings,
    data: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    upload = await _require(pool, settings, project, upload_id)
    if upload["status"] != "pending":
        raise _not_pending(upload, "take parts")
    if data.size is not None and data.size > settings.upload_part_max_bytes:
        raise _part_too_large(settings)
    storage = storage_for(settings)
    part_id = new_id("part")
    left = await limits.stored_bytes_left(pool, settings, project)
    cap = settings.upload_part_max_bytes if left is None else min(settings.upload_part_max_bytes, left)
    try:
        # `data` is spooled by the multipart parser (to disk past 1 MiB); copied in 1 MiB chunks.
        size = await asyncio.to_thread(storage.put, project, part_id, data.file, cap)
    except FileTooLarge:
        if cap < settings.upload_part_max_bytes:
            raise limits.storage_full(settings, project) from None
        raise _part_too_large(settings) from None
    part = {"id": part_id, "object": "upload.part", "created_at": now(), "upload_id": upload_id}
    try:
        async with pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT status, (data->>'bytes')::bigint AS bytes FROM uploads"
                    " WHERE id = %s AND project_id = %s FOR UPDATE",
                    (upload_id, project),
                )
            ).fetchone()
            if row is None or row["status"] != "pending":  # completed or cancelled meanwhile
                raise _not_pending({**upload, "status": row["status"] if row else "gone"}, "take parts")
            held = await (
                await conn.execute(
                    "SELECT coalesce(sum(bytes), 0) AS n FROM upload_parts WHERE upload_id = %s",
                    (upload_id,),
                )
            ).fetchone()
            assert held is not None  # an aggregate always returns a row
            if int(held["n"]) + size > int(row["bytes"]):
                raise bad_request(
                    f"Upload {upload_id} was created with bytes={row['bytes']}; this part would bring"
                    f" its parts to {int(held['n']) + size} bytes.",
                    "data",
                    "upload_too_large",
                )
            await limits.reserve_stored_bytes(conn, settings, project, size)
            await conn.execute(
                "INSERT INTO upload_parts (id, upload_id, project_id, bytes, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (part_id, upload_id, project, size, part["created_at"]),
            )
    except BaseException:
        await asyncio.to_thread(storage.delete, project, part_id)
        raise
    return part


def _part_streams(storage: FileStorage, project: str, part_ids: list[str]) -> Iterator[Iterator[bytes]]:
    for part_id in part_ids:
        yield storage.iter_bytes(project, part_id)


@router.post("/{upload_id}/complete")
async def complete_upload(
    upload_id: str, body: UploadComplete, project: Project, pool: Pool, settings: AppSettings
) -> dict[str, Any]:
    upload = await _require(pool, settings, project, upload_id)
    if upload["status"] != "pending":
        raise _not_pending(upload, "be completed")
    if len(set(body.part_ids)) != len(body.part_ids):
        raise bad_request("part_ids lists a part more than once.", "part_ids", "invalid_value")
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, bytes FROM upload_parts WHERE upload_id = %s AND id = ANY(%s)",
                (upload_id, body.part_ids),
            )
        ).fetchall()
    sizes = {r["id"]: int(r["bytes"]) for r in rows}
    unknown = [p for p in body.part_ids if p not in sizes]
    if unknown:
        raise bad_request(
            f"No part of upload {upload_id} has id '{unknown[0]}'.", "part_ids", "invalid_value"
        )
    total = sum(sizes.values())
    if total != upload["bytes"]:
        raise bad_request(
            f"The parts hold {total} bytes, but upload {upload_id} was created with bytes={upload['bytes']}.",
            "bytes",
            "invalid_value",
        )
    storage = storage_for(settings)
    file_id = new_file_id()
    reader = ChainedReader(_part_streams(storage, project, body.part_ids))
    size = await asyncio.to_thread(storage.put, project, file_id, reader, max(total, 0))  # type: ignore[arg-type]
    if body.md5 is not None and reader.md5.hexdigest() != body.md5.lower():
        await asyncio.to_thread(storage.delete, project, file_id)
        raise bad_request(
            f"The md5 of the assembled bytes is {reader.md5.hexdigest()}, not {body.md5}.",
            "md5",
            "invalid_value",
        )
    created = now()
    file = {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created,
        "filename": upload["filename"],
        "purpose": upload["purpose"],
        "status": "processed",
        "status_details": None,
        "expires_at": created + upload["_file_expires_after"] if upload.get("_file_expires_after") else None,
    }
    try:
        async with pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT status FROM uploads WHERE id = %s AND project_id = %s FOR UPDATE",
                    (upload_id, project),
                )
            ).fetchone()
            if row is None or row["status"] != "pending":  # cancelled or completed meanwhile
                raise _not_pending({**upload, "status": row["status"] if row else "gone"}, "be completed")
            parts = await (
                await conn.execute("DELETE FROM upload_parts WHERE upload_id = %s RETURNING id", (upload_id,))
            ).fetchall()
            # The parts' bytes leave the quota as the File's arrive: the total does not change.
            await conn.execute(
                "INSERT INTO files (id, project_id, purpose, created_at, data) VALUES (%s, %s, %s, %s, %s)",
                (file_id, project, file["purpose"], created, Jsonb(file)),
            )
            done = await (
                await conn.execute(
                    "UPDATE uploads SET status = 'completed', data = data || %s WHERE id = %s RETURNING data",
                    (Jsonb({"status": "completed", "file": file}), upload_id),
                )
            ).fetchone()
    except BaseException:
        await asyncio.to_thread(storage.delete, project, file_id)
        raise
    assert done is not None  # the row is locked above
    for part in parts:
        await asyncio.to_thread(storage.delete, project, part["id"])
    return _public(done["data"])


@router.post("/{upload_id}/cancel")
async def cancel_upload(
    upload_id: str, project: Project, pool: Pool, settings: AppSettings
) -> dict[str, Any]:
    upload = await _require(pool, settings, project, upload_id)
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                "SELECT status FROM uploads WHERE id = %s AND project_id = %s FOR UPDATE",
                (upload_id, project),
            )
        ).fetchone()
        if row is None or row["status"] != "pending":
            raise _not_pending({**upload, "status": row["status"] if row else "gone"}, "be cancelled")
        done = await (
            await conn.execute(
                "UPDATE uploads SET status = 'cancelled', data = data || '{\"status\": \"cancelled\"}'"
                " WHERE id = %s RETURNING data",
                (upload_id,),
            )
        ).fetchone()
        parts = await (
            await conn.execute("SELECT id FROM upload_parts WHERE upload_id = %s", (upload_id,))
        ).fetchall()
    assert done is not None  # the row is locked above
    await _remove_parts(pool, storage_for(settings), project, [p["id"] for p in parts])
    return _public(done["data"])
