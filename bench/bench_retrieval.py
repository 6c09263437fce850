"""Retrieval benchmark: prints ingestion throughput (chunks/s, real model), hybrid search latency
p50/p99 at 10k and 100k chunks (synthetic vectors), and recall@10 of the HNSW index against exact
search on the same data.

    DATABASE_URL=... python bench/bench_retrieval.py [--sizes 10000,100000] [--queries 200]

Works in a scratch schema (`bench_retrieval`, dropped at the end), so it never touches real data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import psycopg

from activities.embeddings import Embedder
from assistants.db.search_sql import SearchTuning, fuse, leg_query, results_query, vector_literal

SCHEMA = "bench_retrieval"
# A 5000-word synthetic vocabulary: each query word matches a few chunks, as in real text.
WORDS = [f"w{i}" for i in range(5000)]


def setup(conn: psycopg.Connection) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in ("files", "vector_store_files"):
        conn.execute(f"CREATE TABLE {SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)")
    # Chunks without their search indexes: bulk loads build them afterwards (build_indexes), which is
    # how a large corpus is best loaded, and far faster than maintaining HNSW row by row.
    conn.execute(
        f"CREATE TABLE {SCHEMA}.vector_store_chunks (LIKE public.vector_store_chunks"
        " INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)"
    )
    conn.execute(f"SET search_path = {SCHEMA}, public")


def ingestion(conn: psycopg.Connection, embedder: Embedder, n_docs: int) -> None:
    embedder.embed(["warm up"])  # load the model outside the timing
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=900)) + "." for _ in range(n_docs)]
    t0 = time.perf_counter()
    chunks = [c for t in texts for c in embedder.chunk(t, 800, 400)]
    t1 = time.perf_counter()
    vecs = embedder.embed([c.text for c in chunks])
    t2 = time.perf_counter()
    with conn.cursor().copy(
        "COPY vector_store_chunks (id, project_id, vector_store_id, file_id, chunk_index, char_start,"
        " char_end, tokens, content, embedding) FROM STDIN"
    ) as copy:
        for i, (c, v) in enumerate(zip(chunks, vecs, strict=True)):
            copy.write_row(
                (
                    f"ing{i}",
                    "bench",
                    "vs_ing",
                    "f",
                    i,
                    c.char_start,
                    c.char_end,
                    c.tokens,
                    c.text,
                    vector_literal(v),
                )
            )
    t3 = time.perf_counter()
    print(
        f"ingestion: {len(chunks)} chunks of 800 tokens: chunk {t1 - t0:.2f}s, embed {t2 - t1:.2f}s, "
        f"write {t3 - t2:.2f}s -> {len(chunks) / (t3 - t0):.1f} chunks/s end to end "
        f"(embedding dominates; model={embedder.model_path.rsplit('/', 1)[-1]}, batch={embedder.batch_size})"
    )


def fill(conn: psycopg.Connection, n: int, start: int, rng: np.random.Generator) -> np.ndarray:
    # Clustered synthetic vectors (real embeddings cluster too; uniform noise makes HNSW look worse than it is).
    centers = rng.normal(size=(64, 384)).astype(np.float32)
    vecs = centers[rng.integers(0, 64, n)] + 0.6 * rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with conn.cursor().copy(
        "COPY vector_store_chunks (id, project_id, vector_store_id, file_id, chunk_index, char_start,"
        " char_end, tokens, content, embedding) FROM STDIN"
    ) as copy:
        for i, v in enumerate(vecs):
            j = start + i
            text = " ".join(rng.choice(WORDS, size=40))
            copy.write_row(
                (f"c{j}", "bench", "vs_bench", f"file{j % 500}", j, 0, len(text), 40, text, vector_literal(v))
            )
    return vecs


def build_indexes(conn: psycopg.Connection) -> float:
    """The same HNSW (cosine, m=16, ef_construction=64) and GIN indexes as the real table."""
    t = time.perf_counter()
    conn.execute("DROP INDEX IF EXISTS bench_chunks_hnsw, bench_chunks_tsv")
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute(
        "CREATE INDEX bench_chunks_hnsw ON vector_store_chunks USING hnsw (embedding vector_cosine_ops)"
    )
    conn.execute("CREATE INDEX bench_chunks_tsv ON vector_store_chunks USING gin (tsv)")
    return time.perf_counter() - t


def latency(conn: psycopg.Connection, size: int, n_queries: int, rng: np.random.Generator) -> None:
    query, params = results_query(None)
    times = []
    for _ in range(n_queries):
        q = rng.normal(size=384).astype(np.float32)
        q /= np.linalg.norm(q)
        p = dict(
            params,
            emb=vector_literal(q),
            text=" ".join(rng.choice(WORDS, size=6)),
            project="bench",
            stores=["vs_bench"],
            k=100,
            threshold=0.0,
            common=SearchTuning().common_term_frequency,
            budget=SearchTuning().text_match_budget,
            limit=20,
        )
        t = time.perf_counter()
        with conn.transaction():
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            conn.execute("SET LOCAL hnsw.ef_search = 100")
            # The two legs in turn on one connection (the product runs them at once on two).
            cols = ("id", "dist")
            vec = [dict(zip(cols, r, strict=True)) for r in conn.execute(leg_query("vector", False), p)]
            fts = [dict(zip(cols, r, strict=True)) for r in conn.execute(leg_query("text", False), p)]
            best = fuse(vec, fts)[:20]
            conn.execute(query, dict(p, ids=[i for i, _ in best], scores=[s for _, s in best])).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(
        f"search @ {size:>7} chunks: hybrid (HNSW + FTS + RRF, top 20): p50 {statistics.median(times):.1f} ms, "
        f"p99 {p99:.1f} ms over {n_queries} queries"
    )


def recall(
    conn: psycopg.Connection, size: int, vecs: np.ndarray, n_queries: int, rng: np.random.Generator
) -> None:
    hits = 0
    for _ in range(n_queries):
        q = vecs[rng.integers(0, len(vecs))] + 0.3 * rng.normal(size=384).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = set(np.argsort(-(vecs @ q))[:10].tolist())
        with conn.transaction():
            conn.execute("SET LOCAL hnsw.ef_search = 100")
            rows = conn.execute(
                "SELECT chunk_index FROM vector_store_chunks WHERE vector_store_id = 'vs_bench'"
                " ORDER BY embedding <=> %s::vector LIMIT 10",
                (vector_literal(q),),
            ).fetchall()
        hits += len(exact & {r[0] for r in rows})
    print(
        f"recall@10 @ {size:>7} chunks: HNSW (m=16, ef_construction=64, ef_search=100) vs exact: "
        f"{hits / (10 * n_queries):.3f} over {n_queries} queries"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ingest-docs", type=int, default=20)
    args = ap.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    rng = np.random.default_rng(42)
    with psycopg.connect(url, autocommit=True) as conn:
        setup(conn)
        try:
            if args.ingest_docs:
                ingestion(conn, Embedder(), args.ingest_docs)
            conn.execute("DELETE FROM vector_store_chunks")
            vecs = np.zeros((0, 384), dtype=np.float32)
            for size in sorted(int(s) for s in args.sizes.split(",")):
                t = time.perf_counter()
                conn.execute("DROP INDEX IF EXISTS bench_chunks_hnsw, bench_chunks_tsv")
                vecs = np.concatenate([vecs, fill(conn, size - len(vecs), len(vecs), rng)])
                loaded = time.perf_counter() - t
                built = build_indexes(conn)
                conn.execute("ANALYZE vector_store_chunks")
                print(
                    f"loaded {size} chunks in {loaded:.1f}s (COPY), built HNSW + GIN indexes in {built:.1f}s"
                )
                latency(conn, size, args.queries, rng)
                recall(conn, size, vecs, min(args.queries, 100), rng)
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
