-- Deleting means gone (issue 12): a chunk belongs to its vector_store.file row, so removing the
-- file from the store (or deleting the file, or the store) removes its chunks in the same
-- transaction, whatever ingestion is doing concurrently. Chunks left behind by earlier races
-- (no live vector_store.file) are dropped first.
DELETE FROM vector_store_chunks c
WHERE NOT EXISTS (
    SELECT 1 FROM vector_store_files f WHERE f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id
);

ALTER TABLE vector_store_chunks
    ADD CONSTRAINT vector_store_chunks_file_fk FOREIGN KEY (vector_store_id, file_id)
    REFERENCES vector_store_files (vector_store_id, file_id) ON DELETE CASCADE;
