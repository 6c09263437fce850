-- Uploads (issue 14): a File sent in parts. The upload keeps the 0001 layout (official shape in
-- `data`, `seq` for order); each part is one stored object under its own id until the upload
-- completes (assembled into a File) or is cancelled/expires (removed). Parts count in the
-- project's stored bytes (api/limits.py) while they exist.
CREATE TABLE uploads (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    status      text NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX uploads_project_pending ON uploads (project_id, expires_at) WHERE status = 'pending';

CREATE TABLE upload_parts (
    id          text PRIMARY KEY,
    upload_id   text NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    bytes       bigint NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX upload_parts_upload ON upload_parts (upload_id);
CREATE INDEX upload_parts_project ON upload_parts (project_id);
