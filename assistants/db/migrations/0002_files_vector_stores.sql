-- Files, vector stores and their chunks (issue 5). Objects keep the 0001 layout: the official
-- shape whole in `data`, filter/join columns beside it, `seq` for cursor pagination.

CREATE TABLE files (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    purpose     text NOT NULL,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX files_project_seq ON files (project_id, seq);

CREATE TABLE vector_stores (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX vector_stores_project_seq ON vector_stores (project_id, seq);

-- A vector_store.file's public id is its file id, so one file may appear in many stores: the
-- row key `id` is derived from (vector_store_id, file_id) and the public id lives in data.
CREATE TABLE vector_store_files (
    seq             bigserial UNIQUE,
    id              text PRIMARY KEY,
    project_id      text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    vector_store_id text NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    file_id         text NOT NULL,
    batch_id        text,
    status          text NOT NULL,
    created_at      bigint NOT NULL,
    data            jsonb NOT NULL,
    UNIQUE (vector_store_id, file_id)
);
CREATE INDEX vector_store_files_store_seq ON vector_store_files (vector_store_id, seq);
CREATE INDEX vector_store_files_batch ON vector_store_files (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX vector_store_files_file ON vector_store_files (file_id);

CREATE TABLE vector_store_file_batches (
    seq             bigserial UNIQUE,
    id              text PRIMARY KEY,
    project_id      text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    vector_store_id text NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    status          text NOT NULL,
    created_at      bigint NOT NULL,
    data            jsonb NOT NULL
);

-- Parsed text of a file, written once by the parse activity and reused by every store the file
-- is added to (and by the embed activity, so large text never travels through workflow history).
CREATE TABLE file_texts (
    file_id     text PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
    text        text NOT NULL
);

-- Chunks: ids are derived from (vector_store_id, file_id, chunk_index), and a file's chunks are
-- replaced in one transaction, so a retried ingestion never leaves two copies or half a file.
-- The dimension matches the default embedding model (all-MiniLM-L6-v2); another model with a
-- different dimension needs a migration.
CREATE TABLE vector_store_chunks (
    id              text PRIMARY KEY,
    project_id      text NOT NULL,
    vector_store_id text NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    file_id         text NOT NULL,
    chunk_index     int NOT NULL,
    char_start      int NOT NULL,
    char_end        int NOT NULL,
    tokens          int NOT NULL,
    content         text NOT NULL,
    embedding       vector(384) NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    UNIQUE (vector_store_id, file_id, chunk_index)
);
CREATE INDEX vector_store_chunks_file ON vector_store_chunks (vector_store_id, file_id);
CREATE INDEX vector_store_chunks_hnsw ON vector_store_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX vector_store_chunks_tsv ON vector_store_chunks USING gin (tsv);
