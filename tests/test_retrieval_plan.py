"""file_search at scale (issue 18), against the real embedded Postgres + pgvector and the real
search path (`RetrievalActivities.file_search`, `activities.search`, `tune_search`):

- the vector leg of the hybrid query, unfiltered and with a filter that half the chunks pass, is an
  HNSW index scan (before issue 18 the planner guessed 0.5% for any attribute filter and sorted
  exactly);
- hnsw.ef_search follows the index's size (the configured schedule);
- the full-text leg leaves out query words that most chunks hold (the table's statistics), and
  stops adding words, rarest first, once they match its budget of chunks;
- an attribute filter that keeps 1 chunk in 10 still returns the full max_num_results, and does so
  only because of iterative index scans (with them off, the same query returns fewer).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import pytest_asyncio

from activities.embeddings import shared_embedder
from activities.retrieval import RetrievalActivities
from activities.search import hybrid_search, leg_params
from assistants.db.migrate import apply_migrations
from assistants.db.pool import Pool, make_pool
from assistants.db.search_sql import SearchTuning, leg_query, tune_search, vector_literal
from assistants.payloads import FileSearchInput
from assistants.storage.local import LocalStorage
from stack.postgres import EmbeddedPostgres

pytestmark = pytest.mark.timeout(600)

ROWS, FILES, GROUPS = 20_000, 100, 50  # chunks; files; groups of files (attribute `group`)
STORE, PROJECT = "vs_plan", "proj_plan"
# Query words that no chunk holds: the full-text leg finds nothing, so every result comes from
# the vector leg, whose row count is then what the test measures.
QUERY = "qqzx vvkw"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    tmp = Path(tempfile.mkdtemp(prefix="assistants-plan-"))
    os.chmod(tmp, 0o755)  # Postgres runs as an unprivileged user that must reach its data dir
    pg = EmbeddedPostgres(tmp)
    url = pg.start()
    try:
        apply_migrations(url)
        _load(url)
        yield url
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _load(url: str) -> None:
    """ROWS chunks of clustered unit vectors (as real embeddings cluster) in one store, each file
    with a `group` attribute, then the real HNSW/GIN indexes as migrations built them, and ANALYZE."""
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(32, 384)).astype(np.float32)
    vecs = centers[rng.integers(0, 32, ROWS)] + 0.7 * rng.normal(size=(ROWS, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO projects (id, name, created_at) VALUES (%s, %s, 0)", (PROJECT, PROJECT))
        conn.execute(
            "INSERT INTO vector_stores (id, project_id, created_at, data) VALUES (%s, %s, 0, '{}')",
            (STORE, PROJECT),
        )
        for i in range(FILES):
            fid = f"file_{i}"
            conn.execute(
                "INSERT INTO files (id, project_id, purpose, created_at, data) VALUES (%s, %s, 'assistants', 0, %s)",
                (fid, PROJECT, json.dumps({"filename": f"{fid}.txt"})),
            )
            conn.execute(
                "INSERT INTO vector_store_files (id, project_id, vector_store_id, file_id, status, created_at, data)"
                " VALUES (%s, %s, %s, %s, 'completed', 0, %s)",
                (f"{STORE}/{fid}", PROJECT, STORE, fid, json.dumps({"attributes": {"group": i % GROUPS}})),
            )
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Bulk load first, then build the index as the migrations define it, as pgvector advises.
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'vector_store_chunks_hnsw'"
        ).fetchone()
        assert row is not None
        conn.execute("DROP INDEX vector_store_chunks_hnsw")
        with conn.cursor().copy(
            "COPY vector_store_chunks (id, project_id, vector_store_id, file_id, chunk_index, char_start,"
            " char_end, tokens, content, embedding) FROM STDIN"
        ) as copy:
            for j, v in enumerate(vecs):
                # Every chunk says "chunk", "file" and "topic"; one says "zebra" besides.
                text = f"chunk {j} of file {j % FILES} about topic {j % 97}" + (" zebra" if j == 0 else "")
                copy.write_row(
                    (f"c{j}", PROJECT, STORE, f"file_{j % FILES}", j, 0, 9, 9, text, vector_literal(v))
                )
        conn.execute(row[0])
        conn.execute("ANALYZE")


@pytest_asyncio.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    p = make_pool(database_url, max_size=2)
    await p.open()
    try:
        yield p
    finally:
        await p.close()


def _activities(pool: Pool, tuning: SearchTuning) -> RetrievalActivities:
    return RetrievalActivities(
        pool, LocalStorage(Path(tempfile.gettempdir())), shared_embedder(), tuning=tuning
    )


def _inp(filters: dict[str, Any] | None, max_num_results: int = 20) -> FileSearchInput:
    return FileSearchInput(
        project_id=PROJECT,
        query=QUERY,
        vector_store_ids=[STORE],
        max_num_results=max_num_results,
        filters=filters,
    )


# Files of groups 0-4: 1 chunk in 10 passes. The planner now sees that (the passing file ids are
# a constant list), so it walks the graph; before, it guessed 0.5% for any attribute filter and
# sorted the filtered chunks exactly, off the index.
GROUP_FILTER = {"type": "lt", "key": "group", "value": 5}
# Files of groups 0-24: half the chunks pass. At the default ef_search here (400), sorting the
# 2000 chunks that pass GROUP_FILTER exactly is cheaper than the walk, and the planner rightly
# does that; for half the store it walks the graph.
HALF_FILTER = {"type": "lt", "key": "group", "value": 25}


def _index_scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index name) of every index scan in an EXPLAIN (FORMAT JSON) plan tree."""
    out = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            out.append((node["Node Type"], node["Index Name"]))
        stack += node.get("Plans", [])
    return out


async def _explain(pool: Pool, inp: FileSearchInput) -> tuple[list[tuple[str, str]], int]:
    """The plan of the vector leg as the search runs it (its params and HNSW settings)."""
    vec = (await asyncio.to_thread(shared_embedder().embed, [inp.query]))[0]
    params = await leg_params(pool, inp, [STORE], vec, SearchTuning())
    query = leg_query("vector", bool(inp.filters))
    async with pool.connection() as conn, conn.transaction():
        await tune_search(conn, SearchTuning(), bool(inp.filters))
        ef = int(
            (await (await conn.execute("SHOW hnsw.ef_search")).fetchone() or {"hnsw.ef_search": 0})[
                "hnsw.ef_search"
            ]
        )
        row = await (await conn.execute(b"EXPLAIN (FORMAT JSON) " + query.as_bytes(conn), params)).fetchone()
    assert row is not None
    return _index_scans(row["QUERY PLAN"][0]["Plan"]), ef


@pytest.mark.parametrize("filters", [None, HALF_FILTER], ids=["unfiltered", "filtered"])
async def test_vector_leg_scans_the_hnsw_index(pool: Pool, filters: dict[str, Any] | None) -> None:
    scans, _ = await _explain(pool, _inp(filters))
    assert ("Index Scan", "vector_store_chunks_hnsw") in scans, scans


async def test_ef_search_follows_the_index_size(pool: Pool) -> None:
    schedule = ((0, 40), (ROWS // 2, 77), (ROWS * 10, 300))
    async with pool.connection() as conn, conn.transaction():
        ef = await tune_search(conn, SearchTuning(ef_schedule=schedule))
        row = await (await conn.execute("SELECT current_setting('hnsw.ef_search') AS ef")).fetchone()
    assert ef == 77 and row is not None and row["ef"] == "77"
    async with pool.connection() as conn, conn.transaction():  # a filtered search walks further
        assert await tune_search(conn, SearchTuning(ef_schedule=schedule, filtered_ef_factor=4), True) == 308
    _, default_ef = await _explain(pool, _inp(None))
    # The default schedule: the last step at or below the index's ROWS chunks.
    assert default_ef == max(step for step in SearchTuning().ef_schedule if step[0] <= ROWS)[1]


async def test_filtered_search_returns_the_full_max_num_results(pool: Pool) -> None:
    # ef_search 40 (not multiplied for the filter): a walk that stops at ef_search candidates finds
    # about 4 that pass the filter.
    small = SearchTuning(ef_schedule=((0, 40),), filtered_ef_factor=1)
    out = await _activities(pool, small).file_search(_inp(GROUP_FILTER))
    assert len(out.results) == 20
    assert {r.attributes["group"] for r in out.results} <= {0, 1, 2, 3, 4}
    assert len((await _activities(pool, SearchTuning()).file_search(_inp(GROUP_FILTER))).results) == 20
    # The same query without iterative scans stops short.
    off = SearchTuning(ef_schedule=((0, 40),), filtered_ef_factor=1, iterative_scan="off")
    assert len((await _activities(pool, off).file_search(_inp(GROUP_FILTER))).results) < 20


async def text_leg(pool: Pool, tuning: SearchTuning, query: str) -> list[str]:
    inp = FileSearchInput(project_id=PROJECT, query=query, vector_store_ids=[STORE])
    vec = (await asyncio.to_thread(shared_embedder().embed, [inp.query]))[0]
    return [r["id"] for r in await hybrid_search(pool, inp, [STORE], vec, tuning, leg="text")]


async def test_full_text_leg_leaves_out_common_words(pool: Pool) -> None:
    # "chunk" is in every chunk: only "zebra" is searched, and one chunk holds it.
    assert await text_leg(pool, SearchTuning(), "chunk zebra") == ["c0"]
    # Every word kept: "chunk" matches all, and the leg returns a full page of them.
    keep_all = SearchTuning(common_term_frequency=1.0, text_match_budget=10 * ROWS)
    assert len(await text_leg(pool, keep_all, "chunk zebra")) == 20


async def test_full_text_leg_stops_at_its_match_budget(pool: Pool) -> None:
    # "5" is in about 2% of the chunks (file 5, topic 5): some 400, past a budget of 100 matches
    # and within one of 1000. "zebra" is the rarer word, taken first, and always stays.
    assert await text_leg(pool, SearchTuning(text_match_budget=100), "zebra 5") == ["c0"]
    within = await text_leg(pool, SearchTuning(text_match_budget=1000), "zebra 5")
    assert len(within) == 20
