-- GET /v1/threads (issue 14) filters on metadata (`metadata[key]=value`, jsonb containment) and
-- pages by (project_id, seq), which threads_project_seq already serves.
CREATE INDEX threads_metadata ON threads USING gin ((data -> 'metadata') jsonb_path_ops);
