"""file_search at scale on real text (issue 18): one run prints, side by side,

- per store size x attribute filter: recall@10 of the vector leg and of the hybrid result against
  exact search, p50/p95 latency of the real search path, rows returned (of max_num_results);
- recall@10 of the vector leg at several ef_search values (what the ef schedule is chosen from);
- hit@k of known answer spans for vector, full-text and hybrid search (bench/_questions.py);
- ingestion: chunks embedded per second by the Embedder (batched, model loaded once), and with
  `--api-docs N` the time N corpus pages take through `vector_stores.file_batches.upload_and_poll`
  on a scratch stack (with `file_counts` progress), extrapolated to 100 MB.

    .venv/bin/python bench/bench_retrieval_real.py [--sizes 10000,100000] [--queries 100]
        [--embed-budget-s 0] [--api-docs 0]

The corpus, chunking and embedding cache are bench/_corpus.py's. A size whose chunks are not all
embedded yet is cut to the embedded prefix, and the cut is printed (`--embed-budget-s` embeds more
first; `python bench/_corpus.py --chunks N` embeds in the background). Searches run through
`activities.search.hybrid_search` (the product's queries, filters and HNSW settings) in a scratch
schema, on DATABASE_URL or, when unset, an embedded Postgres in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from _common import append_results, machine, pct, scratch_stack
from _corpus import (
    MAX_TOKENS,
    OVERLAP,
    SOURCES,
    CorpusChunk,
    EmbeddingCache,
    chunks,
    documents,
    queries,
    split,
)
from _questions import QUESTIONS

from activities.embeddings import Embedder
from activities.search import Leg, hybrid_search
from assistants.db.pool import Pool, make_pool
from assistants.db.search_sql import SearchTuning, vector_literal
from assistants.payloads import FileSearchInput

SCHEMA = "bench_retrieval_real"
PROJECT, STORE = "bench", "vs_real"
MAX_RESULTS = 10
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "manual=postgresql": {"type": "eq", "key": "manual", "value": "postgresql"},
    "area=c-api|howto": {"type": "in", "key": "area", "value": ["c-api", "howto"]},
}


def attributes(doc: str) -> dict[str, str]:
    """`manual` (python, postgresql, django, sqlalchemy, git, nodejs, cmake) and `area` (the page's
    top folder in its manual, e.g. library, c-api, howto; PostgreSQL's: sql or manual)."""
    p = Path(doc)
    src = next(s for s in SOURCES if p.is_relative_to(s))
    manual = {"python3.11": "python", "postgresql-doc-15": "postgresql", "python-django-doc": "django",
              "python-sqlalchemy-doc": "sqlalchemy", "git-doc": "git", "nodejs": "nodejs",
              "cmake-data": "cmake"}[src.parts[4]]  # fmt: skip
    if manual == "postgresql":
        return {"manual": manual, "area": "sql" if p.name.startswith("sql-") else "manual"}
    rel = p.relative_to(src)
    return {"manual": manual, "area": rel.parts[0] if len(rel.parts) > 1 else "top"}


@contextmanager
def database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from assistants.db.migrate import apply_migrations
    from stack.postgres import EmbeddedPostgres

    tmp = Path(tempfile.mkdtemp(prefix="bench-retrieval-real-"))
    os.chmod(tmp, 0o755)  # Postgres runs as an unprivileged user that must reach its data dir
    pg = EmbeddedPostgres(tmp)
    try:
        url = pg.start()
        apply_migrations(url)
        yield url
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def setup(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in ("projects", "files", "vector_stores", "vector_store_files", "vector_store_chunks"):
        conn.execute(f"CREATE TABLE {SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)")
    # The chunks' btree indexes stay (primary key, store/file); HNSW and GIN are built after each
    # bulk load (load()), which is far faster than maintaining them row by row.
    for (name,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'vector_store_chunks'"
        " AND (indexdef LIKE '%%USING hnsw%%' OR indexdef LIKE '%%USING gin%%')",
        (SCHEMA,),
    ).fetchall():
        conn.execute(f"DROP INDEX {SCHEMA}.{name}")
    conn.execute(f"SET search_path = {SCHEMA}, public")
    conn.execute(
        f"INSERT INTO vector_stores (id, project_id, created_at, data) VALUES ('{STORE}', '{PROJECT}', 0, '{{}}')"
    )


def load(
    conn: psycopg.Connection[Any], cs: list[CorpusChunk], vecs: np.ndarray, start: int, hnsw: str = ""
) -> float:
    """Add chunks [start:] (and their documents as files), rebuild the HNSW + GIN indexes as the
    migrations define them (bulk load, then build), ANALYZE. Returns the index build seconds."""
    conn.execute("DROP INDEX IF EXISTS bench_real_hnsw, bench_real_tsv")
    docs = sorted({c.doc for c in cs[start:]})
    known = {r[0] for r in conn.execute("SELECT id FROM files")}
    with conn.cursor().copy("COPY files (id, project_id, purpose, created_at, data) FROM STDIN") as copy:
        for d in docs:
            if d not in known:
                copy.write_row((d, PROJECT, "assistants", 0, json.dumps({"filename": Path(d).name})))
    with conn.cursor().copy(
        "COPY vector_store_files (id, project_id, vector_store_id, file_id, status, created_at, data) FROM STDIN"
    ) as copy:
        for d in docs:
            if d not in known:
                data = {"attributes": attributes(d)}
                copy.write_row((f"{STORE}/{d}", PROJECT, STORE, d, "completed", 0, json.dumps(data)))
    with conn.cursor().copy(
        "COPY vector_store_chunks (id, project_id, vector_store_id, file_id, chunk_index, char_start,"
        " char_end, tokens, content, embedding) FROM STDIN"
    ) as copy:
        for i in range(start, len(cs)):
            c = cs[i].chunk
            copy.write_row(
                (f"c{i}", PROJECT, STORE, cs[i].doc, c.index, c.char_start, c.char_end, c.tokens, c.text,
                 vector_literal(vecs[i]))
            )  # fmt: skip
    t = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute(f"CREATE INDEX bench_real_hnsw ON vector_store_chunks USING {hnsw or migrated_hnsw(conn)}")
    conn.execute("CREATE INDEX bench_real_tsv ON vector_store_chunks USING gin (tsv)")
    built = time.perf_counter() - t
    conn.execute("ANALYZE")
    return built


def migrated_hnsw(conn: psycopg.Connection[Any]) -> str:
    """The HNSW index of the migrations, from `USING` on: `hnsw (embedding vector_cosine_ops) WITH (...)`."""
    row = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'vector_store_chunks_hnsw'"
    ).fetchone()
    return str(row[0]).split(" USING ", 1)[1]  # type: ignore[index]


class Searcher:
    """The product's search (activities.search.hybrid_search) on a pool like the worker's, timed;
    `exact` turns the vector leg's index scan off (an exact sort), `parallel=False` runs the two
    legs one after the other."""

    def __init__(self, pool: Pool, tuning: SearchTuning, parallel: bool | None = None) -> None:
        self.pool, self.tuning, self.parallel = pool, tuning, parallel

    async def run(
        self, text: str, vec: np.ndarray, filters: dict[str, Any] | None, leg: Leg = "hybrid",
        exact: bool = False, limit: int = MAX_RESULTS,
    ) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
        inp = FileSearchInput(
            project_id=PROJECT, query=text, vector_store_ids=[STORE], max_num_results=limit, filters=filters
        )
        t = time.perf_counter()
        rows = await hybrid_search(self.pool, inp, [STORE], vec, self.tuning, leg, exact, self.parallel)
        return rows, (time.perf_counter() - t) * 1000


@asynccontextmanager
async def search_pool(url: str) -> AsyncIterator[Pool]:
    """The worker's pool (assistants.db.pool), its connections in the scratch schema."""
    sep = "&" if "?" in url else "?"
    pool = make_pool(f"{url}{sep}options=-csearch_path%3D{SCHEMA},public", min_size=4, max_size=16)
    await pool.open(wait=True)
    try:
        yield pool
    finally:
        await pool.close()


def overlap(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> float:
    truth = {r["id"] for r in want[:10]}
    return len(truth & {r["id"] for r in got[:10]}) / len(truth) if truth else 1.0


async def measure_size(
    url: str, size: int, qs: list[str], qvecs: np.ndarray, ef_sweep: list[int]
) -> tuple[list[str], dict[int, tuple[float, float]], list[str]]:
    """(table rows, ef sweep, notes): recall and latency per filter; the ef sweep of the vector
    leg; each leg's latency alone, and throughput with 8 searches at once, legs at once vs in turn."""
    lines, notes = [], []
    async with search_pool(url) as pool:
        # The filters at the default settings; no filter with the legs at once (on two connections);
        # and no filter with every query word in the full-text leg (as before issue 18).
        runs: list[tuple[str, dict[str, Any] | None, SearchTuning, bool | None]]
        runs = [(name, f, SearchTuning(), None) for name, f in FILTERS.items()]
        runs.append(("none, legs at once", None, SearchTuning(), True))
        runs.append(
            ("none, every word", None, SearchTuning(common_term_frequency=1.0, text_match_budget=10**9), True)
        )
        for name, f, tuning, parallel in runs:
            s = Searcher(pool, tuning, parallel)
            rv, rh, lat, n = [], [], [], []
            # Timed alone first: the exact searches below scan the table and would evict the
            # index pages a stream of real searches keeps cached.
            for text, v in zip(qs, qvecs, strict=True):
                lat.append((await s.run(text, v, f))[1])
            for text, v in zip(qs, qvecs, strict=True):
                hybrid, _ = await s.run(text, v, f)
                n.append(len(hybrid))
                rh.append(overlap(hybrid, (await s.run(text, v, f, exact=True))[0]))
                ann = (await s.run(text, v, f, leg="vector"))[0]
                rv.append(overlap(ann, (await s.run(text, v, f, leg="vector", exact=True))[0]))
            lines.append(
                f"| {size:>7} | {name:<18} | {np.mean(rv):.3f} | {np.mean(rh):.3f} | {pct(lat, 0.5):6.1f} |"
                f" {pct(lat, 0.95):6.1f} | {np.mean(n):.1f} of {MAX_RESULTS} (min {min(n)}) |"
            )
            print(lines[-1], flush=True)
        s = Searcher(pool, SearchTuning())
        legs = {}
        for leg in ("vector", "text"):
            legs[leg] = pct(
                [(await s.run(t, v, None, leg=leg))[1] for t, v in zip(qs, qvecs, strict=True)], 0.5
            )
        notes.append(
            f"{size} chunks, each leg alone (p50 ms): vector {legs['vector']:.1f}, full-text {legs['text']:.1f}"
        )
        for parallel in (True, False):
            s = Searcher(pool, SearchTuning(), parallel)
            todo = list(zip(qs, qvecs, strict=True))
            t = time.perf_counter()

            async def client(s: Searcher = s, todo: list[tuple[str, np.ndarray]] = todo) -> None:
                while todo:
                    text, v = todo.pop()
                    await s.run(text, v, None)

            await asyncio.gather(*(client() for _ in range(8)))
            notes.append(
                f"{size} chunks, 8 searches at once, legs {'at once' if parallel else 'in turn'}:"
                f" {len(qs) / (time.perf_counter() - t):.0f} searches/s"
            )
        sweep = {}
        for ef in ef_sweep:
            s = Searcher(pool, SearchTuning(ef_schedule=((0, ef),)))
            r, lat = [], []
            for text, v in zip(qs, qvecs, strict=True):
                lat.append((await s.run(text, v, None, leg="vector"))[1])
            for text, v in zip(qs, qvecs, strict=True):
                ann, _ = await s.run(text, v, None, leg="vector")
                r.append(overlap(ann, (await s.run(text, v, None, leg="vector", exact=True))[0]))
            sweep[ef] = (float(np.mean(r)), pct(lat, 0.5))
    return lines, sweep, notes


async def hit_at_k(
    url: str, indexed: str, embedder: EmbeddingCache, ks: tuple[int, ...] = (1, 5, 10)
) -> list[str]:
    """hit@k of each question's known answer span, for each method, over the questions whose span
    the store holds."""
    norm = lambda t: " ".join(t.split())  # noqa: E731
    asked = [(q, span) for q, span in QUESTIONS if norm(span) in indexed]
    if not asked:
        return ["no question's answer span is in this store"]
    vecs, _, _ = embedder.embed([q for q, _ in asked])
    every_word = SearchTuning(
        common_term_frequency=1.0, text_match_budget=10**9
    )  # full-text as it was before issue 18
    methods: list[tuple[str, Leg, SearchTuning]] = [
        ("vector", "vector", SearchTuning()),
        ("full-text", "text", SearchTuning()),
        ("hybrid", "hybrid", SearchTuning()),
        ("full-text, every query word", "text", every_word),
        ("hybrid, every query word", "hybrid", every_word),
    ]
    out = [f"| method | {' | '.join(f'hit@{k}' for k in ks)} |", "|---|" + "---:|" * len(ks)]
    async with search_pool(url) as pool:
        for label, leg, tuning in methods:
            s = Searcher(pool, tuning)
            hits = {k: 0 for k in ks}
            for (q, span), v in zip(asked, vecs, strict=True):
                rows, _ = await s.run(q, v, None, leg=leg, limit=max(ks))
                first = next((i for i, r in enumerate(rows) if norm(span) in norm(r["content"])), None)
                for k in ks:
                    hits[k] += first is not None and first < k
            out.append(f"| {label} | {' | '.join(f'{hits[k] / len(asked):.2f}' for k in ks)} |")
    return [f"{len(asked)} of {len(QUESTIONS)} questions have their answer span in the store", *out]


def api_ingestion(docs: list[str]) -> list[str]:
    """Upload `docs` (corpus pages) through the real API on a scratch stack; time until searchable,
    with the store's file_counts sampled while it goes."""
    import openai

    total = sum(Path(d).stat().st_size for d in docs)
    with scratch_stack("bench-retrieval-real-") as stack:
        client = openai.OpenAI(
            base_url=stack.base_url, api_key=stack.create_key("default"), max_retries=0, timeout=600
        )
        store = client.vector_stores.create(name="bench")
        progress: list[tuple[float, int, int]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(2.0):
                fc = client.vector_stores.retrieve(store.id).file_counts
                progress.append((time.perf_counter() - t0, fc.completed, fc.in_progress))

        t0 = time.perf_counter()
        threading.Thread(target=watch, daemon=True).start()
        handles = [open(d, "rb") for d in docs]  # noqa: SIM115 - closed below
        try:
            batch = client.vector_stores.file_batches.upload_and_poll(
                vector_store_id=store.id,
                files=handles,
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": MAX_TOKENS, "chunk_overlap_tokens": OVERLAP},
                },
                poll_interval_ms=500,
            )
        finally:
            done.set()
            for h in handles:
                h.close()
        took = time.perf_counter() - t0
        hits = client.vector_stores.search(store.id, query="How do I create a new database?").data
    mb = total / 1e6
    seen = ", ".join(
        f"{t:.0f}s {c}/{len(docs)} done ({p} in progress)"
        for t, c, p in progress[:: max(1, len(progress) // 6)]
    )
    return [
        f"upload_and_poll: {len(docs)} files, {mb:.2f} MB of HTML -> {batch.file_counts.completed} completed,"
        f" {batch.file_counts.failed} failed in {took:.1f}s ({mb / took * 60:.2f} MB/min; a search then returned"
        f" {len(hits)} results)",
        f"file_counts while it ran: {seen}",
        f"100 MB at that rate: {100 / (mb / took) / 60:.0f} min (extrapolated, linear)",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ef-sweep", default="40,100,200,400")
    ap.add_argument("--embed-budget-s", type=float, default=0.0)
    ap.add_argument("--api-docs", type=int, default=0)
    ap.add_argument(
        "--hnsw",
        default="",
        help="the index instead of the migrations', e.g. \"hnsw (embedding vector_cosine_ops)"
        ' WITH (m = 16, ef_construction = 64)"',
    )
    ap.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="embedding weights"
    )
    args = ap.parse_args()
    t_start = time.perf_counter()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    embedder = Embedder(batch_size=32, dtype=args.dtype)
    indexed, held = split(documents())
    cs = chunks(embedder, indexed, sizes[-1])
    cache = EmbeddingCache(embedder)
    out = [f"machine: {machine()}"]

    # Ingestion throughput: the Embedder on fresh text (model loaded once, batches of 32).
    sample = [c.chunk.text for c in cs[-256:]]
    embedder.embed(sample[:4])
    t = time.perf_counter()
    embedder.embed(sample)
    rate = len(sample) / (time.perf_counter() - t)
    out.append(
        f"embedding: {rate:.1f} chunks/s ({len(sample)} chunks of <= {MAX_TOKENS} tokens, batch 32, 2 threads)"
    )

    # Embed what the budget allows, then cut each size to the embedded prefix.
    have = 0
    while have < len(cs) and cache.has(cs[have].chunk.text):
        have += 1
    if have < len(cs) and args.embed_budget_s > 0:
        n = min(len(cs) - have, int(rate * args.embed_budget_s))
        cache.embed([c.chunk.text for c in cs[have : have + n]])
        have += n
    vecs = cache.embed([c.chunk.text for c in cs[:have]])[0]
    cut = [min(s, have) for s in sizes]
    for s, c in zip(sizes, cut, strict=True):
        if c < s:
            out.append(
                f"size {s}: only {c} chunks are embedded (of {len(cs)} cut from the corpus); measured at {c}"
            )
    qs = queries(held, args.queries)
    qvecs, _, _ = cache.embed(qs)
    out.append(
        f"corpus: {len(indexed)} pages indexed, {len(held)} held out (Debian's HTML manuals of Python 3.11,"
        " PostgreSQL 15, Django 3.2, SQLAlchemy 1.4, Git 2.39, Node.js 18, CMake 3.25);"
        f" chunks of {MAX_TOKENS} tokens, overlap {OVERLAP}; {len(qs)} queries (held-out sentences and headings)"
    )
    table = [
        "| chunks | filter | recall@10 vector | recall@10 hybrid | p50 ms | p95 ms | rows returned |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    sweeps, questions, leg_notes = [], [], []
    with database() as url, psycopg.connect(url, autocommit=True) as conn:
        setup(conn)
        try:
            loaded = 0
            for size in sorted(set(cut)):
                built = load(conn, cs[:size], vecs, loaded, args.hnsw)
                loaded = size
                fr = {
                    name: conn.execute(
                        "SELECT avg(((f.data->'attributes'->>%s) = ANY(%s))::int)::float FROM vector_store_chunks c"
                        " JOIN vector_store_files f USING (vector_store_id, file_id)",
                        (f["key"], f["value"] if isinstance(f["value"], list) else [f["value"]]),
                    ).fetchone()[0]  # type: ignore[index]
                    for name, f in FILTERS.items()
                    if f
                }
                out.append(
                    f"{size} chunks: {args.hnsw or migrated_hnsw(conn)} + GIN built in {built:.0f}s;"
                    " filters keep " + ", ".join(f"{n} {v:.0%}" for n, v in fr.items())
                )
                lines, sweep, notes = asyncio.run(
                    measure_size(url, size, qs, qvecs, [int(e) for e in args.ef_sweep.split(",")])
                )
                table += lines
                leg_notes += notes
                sweeps.append(
                    f"{size} chunks: "
                    + ", ".join(f"ef {e}: {r:.3f} (p50 {ms:.1f} ms)" for e, (r, ms) in sweep.items())
                )
            text = " ".join(" ".join(c.chunk.text.split()) for c in cs[:loaded])
            questions = asyncio.run(hit_at_k(url, text, cache))
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    out += [
        "recall/latency (latency: the search's SQL round trips, query embedding excluded):",
        *table,
        *leg_notes,
    ]
    out += ["recall@10 of the vector leg by ef_search, and the vector leg's p50 alone (no filter):", *sweeps]
    out += [
        f"answer quality at {loaded} chunks (bench/_questions.py; hit@k: the span is in one of the top k chunks):",
        *questions,
    ]
    if args.api_docs:
        out += api_ingestion([d.name for d in indexed[: args.api_docs]])
    out.append(f"bench_retrieval_real.py took {time.perf_counter() - t_start:.0f}s")
    for line in out:
        print(line, flush=True)
    append_results("bench_retrieval_real.py", out)


if __name__ == "__main__":
    main()
