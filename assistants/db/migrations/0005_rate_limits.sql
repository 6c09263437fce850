-- Per-project rate limits and quotas (issue 12 item 6). Counters live here, not in a process,
-- so every API replica counts the same requests.

-- The current fixed one-minute window of each project (database clock) and its request count.
CREATE TABLE rate_limits (
    project_id    text PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    window_start  bigint NOT NULL,
    requests      integer NOT NULL
);

-- Counting a project's active runs at every run create.
CREATE INDEX runs_project_active ON runs (project_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');
