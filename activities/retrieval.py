"""Retrieval activities: ingestion (parse, chunk + embed + write) and search (file_search).

Idempotent under retries: parsed text is upserted per file; a file's chunks have ids derived from
(vector_store_id, file_id, index) and are replaced in one transaction that also completes the
vector_store.file, so a retry after a crash at any point leaves exactly one copy of each chunk,
and a failure leaves none.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.parsing import InvalidFile, ParseLimits, UnsupportedFile
from activities.parsing.isolated import parse_file as parse_isolated
from activities.search import hybrid_search
from assistants.db.pool import Pool as DbPool
from assistants.db.search_sql import BadFilter, SearchTuning, vector_literal
from assistants.db.vector_stores import chunk_id, set_file_status, touch_store
from assistants.payloads import (
    EmbedFileOutput,
    FileSearchInput,
    FileSearchOutput,
    FileSearchResult,
    IngestFileInput,
    MarkFileInput,
    ParseFileOutput,
)
from assistants.storage import FileStorage

if TYPE_CHECKING:  # numpy and the embedder load in the worker only (the API imports this module
    # through the workflows' typed activity references)
    import numpy as np

    from activities.embeddings import Chunk, Embedder

EMBED_BYTES_PER_DIM = 4


HEARTBEAT_EVERY_S = 5.0


def chunk_usage_bytes(chunk: Chunk, dims: int) -> int:
    return len(chunk.text.encode()) + dims * EMBED_BYTES_PER_DIM


def _download(storage: FileStorage, project_id: str, file_id: str, dst: Path) -> None:
    """Stream the stored file to `dst` (the worker never holds a whole file in memory)."""
    with open(dst, "wb") as out:
        for chunk in storage.iter_bytes(project_id, file_id):
            out.write(chunk)


class RetrievalActivities:
    def __init__(
        self,
        pool: DbPool,
        storage: FileStorage,
        embedder: Embedder,
        limits: ParseLimits | None = None,
        tuning: SearchTuning | None = None,
    ) -> None:
        self.pool, self.storage, self.embedder = pool, storage, embedder
        self.limits = limits or ParseLimits()
        self.tuning = tuning or SearchTuning()

    # --- ingestion -------------------------------------------------------------------------

    @activity.defn
    async def parse_file(self, inp: IngestFileInput) -> ParseFileOutput:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT f.data->>'filename' AS filename, t.text IS NOT NULL AS parsed, length(t.text) AS chars"
                    " FROM files f LEFT JOIN file_texts t ON t.file_id = f.id WHERE f.id = %s AND f.project_id = %s",
                    (inp.file_id, inp.project_id),
                )
            ).fetchone()
        if row is None:
            raise ApplicationError(
                f"File {inp.file_id} was not found.", type="invalid_file", non_retryable=True
            )
        if row["parsed"]:
            return ParseFileOutput(chars=row["chars"])
        text = await self._parse(inp, row["filename"])
        text = text.replace("\x00", "")  # Postgres text cannot hold NUL
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO file_texts (file_id, text) VALUES (%s, %s) ON CONFLICT (file_id) DO NOTHING",
                (inp.file_id, text),
            )
        return ParseFileOutput(chars=len(text))

    async def _parse(self, inp: IngestFileInput, filename: str) -> str:
        """Parse in a killable, rlimited process; a bomb, an over-limit text or a timeout is a
        permanent `invalid_file` with the reason in its message."""
        tmp = await asyncio.to_thread(tempfile.mkdtemp, prefix="assistants-parse-")
        try:
            src = Path(tmp) / "file"
            try:
                await asyncio.to_thread(_download, self.storage, inp.project_id, inp.file_id, src)
            except FileNotFoundError:
                raise ApplicationError(
                    f"The content of file {inp.file_id} is missing.", type="invalid_file", non_retryable=True
                ) from None
            try:
                return await parse_isolated(filename, src, self.limits, activity.heartbeat)
            except (UnsupportedFile, InvalidFile) as exc:
                raise ApplicationError(str(exc), type=exc.code, non_retryable=True) from None
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    @activity.defn
    async def embed_file(self, inp: IngestFileInput) -> EmbedFileOutput:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT text FROM file_texts WHERE file_id = %s", (inp.file_id,))
            ).fetchone()
        if row is None:
            raise ApplicationError(
                "The file has no parsed text (it was deleted).", type="invalid_file", non_retryable=True
            )
        progress = {"embedded": 0, "chunks": 0}
        # Heartbeats on a clock, not per batch: a batch on a busy CPU can outlast the heartbeat
        # timeout, while a dead worker must still be noticed within it.
        async with heartbeating(HEARTBEAT_EVERY_S, progress):
            chunks = await asyncio.to_thread(
                self.embedder.chunk, row["text"], inp.max_chunk_size_tokens, inp.chunk_overlap_tokens
            )
            progress["chunks"] = len(chunks)
            vectors: list[np.ndarray] = []
            batch = self.embedder.batch_size
            for i in range(0, len(chunks), batch):
                progress["embedded"] = i
                vectors.append(
                    await asyncio.to_thread(self.embedder.embed, [c.text for c in chunks[i : i + batch]])
                )
        activity.heartbeat({"embedded": len(chunks), "chunks": len(chunks)})
        import numpy as np

        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 384), dtype=np.float32)
        usage = await self.write_chunks(inp, chunks, matrix)
        return EmbedFileOutput(chunks=len(chunks), usage_bytes=usage)

    async def write_chunks(self, inp: IngestFileInput, chunks: list[Chunk], vectors: np.ndarray) -> int:
        """Replace the file's chunks and complete its vector_store.file, all in one transaction.

        Runs only while the file is still in_progress (a cancelled or removed file gets nothing),
        holding its row lock so a concurrent retry waits and then finds it completed."""
        dims = vectors.shape[1] if len(vectors) else 384
        usage = sum(chunk_usage_bytes(c, dims) for c in chunks)
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT status FROM vector_store_files WHERE vector_store_id = %s AND file_id = %s AND project_id = %s"
                    " FOR UPDATE",
                    (inp.vector_store_id, inp.file_id, inp.project_id),
                )
            ).fetchone()
            if row is None or row["status"] != "in_progress":
                return 0
            await conn.execute(
                "DELETE FROM vector_store_chunks WHERE vector_store_id = %s AND file_id = %s",
                (inp.vector_store_id, inp.file_id),
            )
            async with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY vector_store_chunks (id, project_id, vector_store_id, file_id, chunk_index, char_start, char_end,"
                    " tokens, content, embedding) FROM STDIN"
                ) as copy,
            ):
                for c, v in zip(chunks, vectors, strict=True):
                    await copy.write_row(
                        (
                            chunk_id(inp.vector_store_id, inp.file_id, c.index),
                            inp.project_id,
                            inp.vector_store_id,
                            inp.file_id,
                            c.index,
                            c.char_start,
                            c.char_end,
                            c.tokens,
                            c.text.replace("\x00", ""),
                            vector_literal(v),
                        )
                    )
            await set_file_status(conn, inp.vector_store_id, inp.file_id, "completed", usage_bytes=usage)
            await touch_store(conn, inp.vector_store_id)
        return usage

    @activity.defn
    async def mark_file(self, inp: MarkFileInput) -> None:
        """Fail or cancel a vector_store.file that is still in progress (and drop any chunks)."""
        error = (
            {"code": inp.error_code or "server_error", "message": inp.error_message or ""}
            if inp.status == "failed"
            else None
        )
        async with self.pool.connection() as conn, conn.transaction():
            if await set_file_status(conn, inp.vector_store_id, inp.file_id, inp.status, error):
                await conn.execute(
                    "DELETE FROM vector_store_chunks WHERE vector_store_id = %s AND file_id = %s",
                    (inp.vector_store_id, inp.file_id),
                )

    # --- search ------------------------------------------------------------------------------

    async def run_vector_store_ids(self, project_id: str, run_id: str) -> list[str]:
        """The run's stores: its thread's and its assistant's tool_resources.file_search."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT t.data->'tool_resources'->'file_search'->'vector_store_ids' AS t_ids,"
                    "       a.data->'tool_resources'->'file_search'->'vector_store_ids' AS a_ids"
                    " FROM runs r JOIN threads t ON t.id = r.thread_id LEFT JOIN assistants a ON a.id = r.assistant_id"
                    " WHERE r.id = %s AND r.project_id = %s",
                    (run_id, project_id),
                )
            ).fetchone()
        if row is None:
            return []
        ids = list(row["t_ids"] or []) + list(row["a_ids"] or [])
        return list(dict.fromkeys(ids))

    @activity.defn
    async def file_search(self, inp: FileSearchInput) -> FileSearchOutput:
        stores = list(inp.vector_store_ids)
        if not stores and inp.run_id:
            stores = await self.run_vector_store_ids(inp.project_id, inp.run_id)
        if not stores or not inp.query.strip():
            return FileSearchOutput(results=[], vector_store_ids=stores)
        query_vec = (await asyncio.to_thread(self.embedder.embed, [inp.query]))[0]
        try:
            rows = await hybrid_search(self.pool, inp, stores, query_vec, self.tuning)
        except BadFilter as exc:
            raise ApplicationError(str(exc), type="InvalidRequest", non_retryable=True) from None
        async with self.pool.connection() as conn, conn.transaction():
            for sid in stores:
                await touch_store(conn, sid)
        results = [
            FileSearchResult(
                file_id=r["file_id"],
                filename=r["filename"] or "",
                score=round(float(r["score"]), 6),
                text=r["content"],
                chunk_ids=[r["id"]],
                vector_store_id=r["vector_store_id"],
                attributes=dict(r["attributes"] or {}),
            )
            for r in rows
        ]
        return FileSearchOutput(results=results, vector_store_ids=stores)
