-- A denser HNSW graph for file_search (issue 18): m 24 and ef_construction 200 instead of pgvector's
-- defaults (16, 64). On real text (bench/bench_retrieval_real.py, 44k chunks) the default graph
-- needed ef_search 400 for recall@10 >= 0.98 of exact; with this one 100k chunks reach 0.983 at
-- ef_search 200 (bench/RESULTS.md), and a graph walk costs about ef_search. The rebuild reads every chunk: 100k chunks took 74 s with the
-- GIN index on 2 cores (bench/RESULTS.md), during which chunks cannot be written.
-- pgvector builds fastest with the whole graph in memory (about 2 kB a chunk here).
SET LOCAL maintenance_work_mem = '1GB';
DROP INDEX IF EXISTS vector_store_chunks_hnsw;
CREATE INDEX vector_store_chunks_hnsw ON vector_store_chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 24, ef_construction = 200);
