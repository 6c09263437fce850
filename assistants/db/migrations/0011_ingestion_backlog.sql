-- The ingestion backlog gauge (api/metrics.py) counts files awaiting ingestion at every scrape of
-- every API replica: a small partial index keeps that off a scan of all vector store files.
CREATE INDEX vector_store_files_in_progress ON vector_store_files (created_at) WHERE status = 'in_progress';
