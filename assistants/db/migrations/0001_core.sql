-- Core objects. Each API object is stored whole as jsonb `data` (its official shape), with the
-- columns the server filters, joins and locks on pulled out beside it. `seq` gives a total order
-- for cursor pagination (`after` / `before` are object ids, resolved to their seq).

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  bigint NOT NULL
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    key_hash    text NOT NULL UNIQUE,   -- sha256 of the key: keys are 256-bit random, never stored
    redacted    text NOT NULL,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE TABLE assistants (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX assistants_project_seq ON assistants (project_id, seq);

CREATE TABLE threads (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX threads_project_seq ON threads (project_id, seq);

CREATE TABLE messages (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    thread_id   text NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    run_id      text,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX messages_thread_seq ON messages (thread_id, seq);
CREATE INDEX messages_run ON messages (run_id);

CREATE TABLE runs (
    seq          bigserial UNIQUE,
    id           text PRIMARY KEY,
    project_id   text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    thread_id    text NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    assistant_id text NOT NULL,
    status       text NOT NULL,
    created_at   bigint NOT NULL,
    data         jsonb NOT NULL
);
CREATE INDEX runs_thread_seq ON runs (thread_id, seq);
-- OpenAI allows one active run per thread; the database enforces it atomically.
CREATE UNIQUE INDEX runs_one_active_per_thread ON runs (thread_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

CREATE TABLE run_steps (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    thread_id   text NOT NULL,
    run_id      text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX run_steps_run_seq ON run_steps (run_id, seq);

-- Per-run event log for streaming: the inference activity appends deltas here and NOTIFYs;
-- SSE endpoints replay it, then tail it. `attempt` marks which activity attempt wrote a delta
-- so a retried generation can discard a crashed attempt's partial text.
CREATE TABLE run_events (
    seq         bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    attempt     int NOT NULL DEFAULT 0,
    event       text NOT NULL,
    data        jsonb NOT NULL,
    discarded   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_events_run_seq ON run_events (run_id, seq);
