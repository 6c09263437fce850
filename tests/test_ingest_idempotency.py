"""Ingestion retried after a worker kill writes each chunk once.

At the activity level: embed_file (chunk + embed + write in one transaction) runs twice for the
same file, as Temporal would retry it after a worker died before reporting completion; the store
then holds exactly one copy of each chunk. A write for a file that is no longer in progress
(cancelled/removed meanwhile) writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment

from activities.embeddings import Chunk
from activities.retrieval import RetrievalActivities
from assistants.db.pool import open_pool
from assistants.db.vector_stores import file_object, insert_files
from assistants.ids import new_id
from assistants.payloads import IngestFileInput
from assistants.storage.local import LocalStorage


class FakeEmbedder:
    """Deterministic 384-d vectors; the tokenizer is whitespace (ingestion logic, not the model, is under test)."""

    batch_size = 2

    def chunk(self, text: str, max_tokens: int, overlap: int) -> list[Chunk]:
        words = text.split()
        step = max_tokens - overlap
        return [
            Chunk(i, 0, 0, len(words[s : s + max_tokens]), " ".join(words[s : s + max_tokens]))
            for i, s in enumerate(range(0, max(1, len(words) - overlap), step))
        ]

    def embed(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        v = rng.normal(size=(len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
async def pool(stack):  # type: ignore[no-untyped-def]
    url = stack.database_url  # the real stack's own Postgres: never skipped
    stack.create_key("default")  # makes sure a project exists
    p = await open_pool(url, max_size=4)
    yield p
    await p.close()


async def _setup(pool: AsyncConnectionPool, tmp_path) -> tuple[RetrievalActivities, IngestFileInput]:  # type: ignore[no-untyped-def]
    async with pool.connection() as conn:
        project = (await (await conn.execute("SELECT id FROM projects LIMIT 1")).fetchone())["id"]
        file_id, store_id = "file-" + new_id("t")[2:], new_id("vs")
        await conn.execute(
            "INSERT INTO files (id, project_id, purpose, created_at, data) VALUES (%s, %s, 'assistants', 0,"
            " jsonb_build_object('id', %s::text, 'filename', 'a.txt'))",
            (file_id, project, file_id),
        )
        await conn.execute(
            "INSERT INTO file_texts (file_id, text) VALUES (%s, %s)",
            (file_id, " ".join(f"w{i}" for i in range(50))),
        )
        await conn.execute(
            "INSERT INTO vector_stores (id, project_id, created_at, data) VALUES (%s, %s, 0, '{}')",
            (store_id, project),
        )
        chunking = {"type": "static", "static": {"max_chunk_size_tokens": 10, "chunk_overlap_tokens": 2}}
        await insert_files(conn, project, store_id, [file_object(store_id, file_id, 0, chunking, None)])
    acts = RetrievalActivities(pool, LocalStorage(tmp_path), FakeEmbedder())  # type: ignore[arg-type]
    return acts, IngestFileInput(
        project_id=project,
        vector_store_id=store_id,
        file_id=file_id,
        max_chunk_size_tokens=10,
        chunk_overlap_tokens=2,
    )


async def _chunks(pool: AsyncConnectionPool, inp: IngestFileInput) -> list[tuple[str, int]]:
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, chunk_index FROM vector_store_chunks WHERE vector_store_id = %s ORDER BY chunk_index",
                (inp.vector_store_id,),
            )
        ).fetchall()
    return [(r["id"], r["chunk_index"]) for r in rows]


async def test_retried_embed_activity_writes_each_chunk_once(pool: AsyncConnectionPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    acts, inp = await _setup(pool, tmp_path)
    env = ActivityEnvironment()
    first = await env.run(acts.embed_file, inp)
    once = await _chunks(pool, inp)
    assert first.chunks == len(once) == 6 and [i for _, i in once] == list(range(6))
    # The worker "died" after the commit but before Temporal heard back: the retry runs again.
    # Put the row back in progress, as if the first commit had been the crash point's neighbour.
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE vector_store_files SET status = 'in_progress' WHERE vector_store_id = %s",
            (inp.vector_store_id,),
        )
    second = await env.run(acts.embed_file, inp)
    assert second.chunks == first.chunks
    assert await _chunks(pool, inp) == once  # same ids, one copy each
    # And a plain retry after completion (row already completed) writes nothing new.
    await env.run(acts.embed_file, inp)
    assert await _chunks(pool, inp) == once
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT status, data FROM vector_store_files WHERE vector_store_id = %s",
                (inp.vector_store_id,),
            )
        ).fetchone()
        await conn.execute("DELETE FROM vector_stores WHERE id = %s", (inp.vector_store_id,))
        await conn.execute("DELETE FROM files WHERE id = %s", (inp.file_id,))
    assert row["status"] == "completed" and row["data"]["usage_bytes"] > 0


async def test_write_for_a_cancelled_file_writes_nothing(pool: AsyncConnectionPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    acts, inp = await _setup(pool, tmp_path)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE vector_store_files SET status = 'cancelled' WHERE vector_store_id = %s",
            (inp.vector_store_id,),
        )
    await ActivityEnvironment().run(acts.embed_file, inp)
    assert await _chunks(pool, inp) == []
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM vector_stores WHERE id = %s", (inp.vector_store_id,))
        await conn.execute("DELETE FROM files WHERE id = %s", (inp.file_id,))
