"""Files as the sandbox and the tools see them: put bytes as a new File, get a File's bytes.

A put under a derived id (the code_interpreter's outputs: run, call, path) is idempotent, so a
retried tool call never adds a second File.

Implements the sandbox's FileSink / FileSource protocols over the Files table and the storage
backend (local disk or S3)."""

from __future__ import annotations

import asyncio
import io
from typing import BinaryIO

from psycopg.types.json import Jsonb

from assistants.db.pool import Pool as DbPool
from assistants.db.pool import make_pool
from assistants.ids import new_file_id
from assistants.objects import now
from assistants.storage.base import FileStorage


class FilesStore:
    def __init__(
        self, pool: DbPool | None, storage: FileStorage, max_bytes: int, url: str | None = None
    ) -> None:
        """Give a pool, or a database URL for a pool opened on first use (in the caller's loop)."""
        self._pool, self.storage, self.max_bytes, self._url = pool, storage, max_bytes, url

    @property
    def pool(self) -> DbPool:
        if self._pool is None:
            assert self._url is not None
            self._pool = make_pool(self._url, max_size=2)
        return self._pool

    async def _ready(self) -> DbPool:
        pool = self.pool
        if self._url is not None and pool.closed:
            await pool.open(wait=True, timeout=30)
        return pool

    async def put(
        self,
        project_id: str,
        filename: str,
        data: bytes | BinaryIO,
        purpose: str = "assistants_output",
        file_id: str | None = None,
    ) -> str:
        """Store `data` (bytes, or a stream read in chunks) as a new File. With a given (derived)
        `file_id` the put is idempotent: a File that exists already is kept as it is, and a
        repeated storage write is harmless."""
        if file_id is None:
            file_id = new_file_id()
        elif await self._exists(file_id):
            return file_id
        size = await asyncio.to_thread(
            self.storage.put,
            project_id,
            file_id,
            io.BytesIO(data) if isinstance(data, bytes) else data,
            self.max_bytes,
        )
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": now(),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }
        async with (await self._ready()).connection() as conn:
            await conn.execute(
                "INSERT INTO files (id, project_id, purpose, created_at, data) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (file_id, project_id, purpose, obj["created_at"], Jsonb(obj)),
            )
        return file_id

    async def _exists(self, file_id: str) -> bool:
        async with (await self._ready()).connection() as conn:
            row = await (await conn.execute("SELECT 1 FROM files WHERE id = %s", (file_id,))).fetchone()
        return row is not None

    async def get(self, file_id: str, project_id: str | None = None) -> tuple[str, bytes]:
        """(filename, bytes) of a File; with `project_id`, only a File of that project."""
        async with (await self._ready()).connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT project_id, data->>'filename' AS filename FROM files"
                    " WHERE id = %s AND (%s::text IS NULL OR project_id = %s::text)",
                    (file_id, project_id, project_id),
                )
            ).fetchone()
        if row is None:
            raise FileNotFoundError(f"no file {file_id}")
        data = await asyncio.to_thread(self.storage.read, row["project_id"], file_id)
        return row["filename"], data
