"""The hybrid search of file_search: the vector leg (HNSW) and the full-text leg (GIN), one after
the other or, with `SearchTuning.parallel_legs`, at once on two pooled connections; their
candidates (ids and distances) are fused here, and a last round trip reads the best ones' rows
(assistants/db/search_sql.py). bench/bench_retrieval_real.py measures both ways.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from assistants.db.pool import Pool
from assistants.db.search_sql import (
    LEG_ROWS,
    SEARCH_CANDIDATES,
    SearchTuning,
    fuse,
    leg_query,
    matching_files_query,
    results_query,
    tune_search,
    vector_literal,
)
from assistants.payloads import FileSearchInput

if TYPE_CHECKING:
    import numpy as np

Leg = Literal["hybrid", "vector", "text"]


async def leg_params(
    pool: Pool, inp: FileSearchInput, stores: list[str], query_vec: np.ndarray, tuning: SearchTuning
) -> dict[str, Any]:
    """The legs' query parameters; with filters, `files`: the ids of the files that pass them
    (one query), which the planner can weigh where it cannot weigh a filter on attributes."""
    params: dict[str, Any] = {
        "emb": vector_literal(query_vec),
        "text": inp.query,
        "common": tuning.common_term_frequency,
        "budget": tuning.text_match_budget,
        "project": inp.project_id,
        "stores": stores,
        "k": max(SEARCH_CANDIDATES, inp.max_num_results * 4),
    }
    if inp.filters:
        files_query, files_params = matching_files_query(inp.filters)
        async with pool.connection() as conn:
            rows = await (await conn.execute(files_query, {**files_params, **params})).fetchall()
        params["files"] = [r["file_id"] for r in rows]
    return params


async def hybrid_search(
    pool: Pool,
    inp: FileSearchInput,
    stores: list[str],
    query_vec: np.ndarray,
    tuning: SearchTuning,
    leg: Leg = "hybrid",
    exact: bool = False,
    parallel: bool | None = None,
) -> list[dict[str, Any]]:
    """The fused results of `inp` over `stores` (BadFilter on a bad filter). The vector leg scans
    HNSW with ef_search by the index's size, and iteratively past filtered-out rows, so a small
    store in a big table or a filtered query still gets its k nearest chunks.

    For benchmarks: `leg` returns one leg's chunks alone (id, content); `exact` turns the vector
    leg's index scan off (an exact sort); `parallel` overrides `tuning.parallel_legs`."""
    results, fparams = results_query(inp.filters)  # validates the filters before any query
    params = await leg_params(pool, inp, stores, query_vec, tuning)

    async def vector_leg() -> list[dict[str, Any]]:
        async with pool.connection() as conn, conn.transaction():  # SET LOCAL needs a transaction
            await tune_search(conn, tuning, filtered)
            if exact:
                await conn.execute("SET LOCAL enable_indexscan = off")
            query = leg_query("vector", filtered)
            return list(await (await conn.execute(query, params, prepare=prepare)).fetchall())

    async def text_leg() -> list[dict[str, Any]]:
        async with pool.connection() as conn:
            query = leg_query("text", filtered)
            return list(await (await conn.execute(query, params, prepare=prepare)).fetchall())

    filtered = bool(inp.filters)
    # Never a prepared statement with a filter: its generic plan would take the passing file ids
    # as a parameter and compare each chunk with every one of them, where a plan for the actual
    # list looks them up in a hash table (and weighs how many chunks pass).
    prepare = False if filtered else None
    legs = {"hybrid": [vector_leg, text_leg], "vector": [vector_leg], "text": [text_leg]}[leg]
    if tuning.parallel_legs if parallel is None else parallel:
        found = await asyncio.gather(*(run() for run in legs))
    else:
        found = [await run() for run in legs]
    async with pool.connection() as conn:
        if leg != "hybrid":
            ids = [r["id"] for r in found[0]]
            return list(
                await (await conn.execute(LEG_ROWS, {"ids": ids, "limit": inp.max_num_results})).fetchall()
            )
        scored = [(cid, score) for cid, score in fuse(found[0], found[1]) if score >= inp.score_threshold]
        # The best 2 x limit first: their rows nearly always pass (a chunk of a deleted file is
        # deleted with it), and reading all of them costs a lookup each.
        rows: list[dict[str, Any]] = []
        cut = 2 * inp.max_num_results
        for part in (scored[:cut], scored[cut:]):
            if not part or len(rows) >= inp.max_num_results:
                break
            params.update(
                fparams,
                ids=[cid for cid, _ in part],
                scores=[score for _, score in part],
                limit=inp.max_num_results - len(rows),
            )
            rows += await (await conn.execute(results, params)).fetchall()
        return rows
