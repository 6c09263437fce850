-- Webhook endpoints and their deliveries (issue 3, item 6). An endpoint keeps the 0001 layout
-- (public shape in `data`, `seq` for cursor pagination); its signing secret lives beside it,
-- never in `data`, so no listing can leak it.

CREATE TABLE webhooks (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url         text NOT NULL,
    secret      text NOT NULL,                -- whsec_<base64 key>, shown once on create
    event_types text[] NOT NULL,              -- which event types it receives
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX webhooks_project_seq ON webhooks (project_id, seq);

-- One row per event, written once: the body every delivery attempt sends (so retries send the
-- same bytes). `id` is derived from the run and the transition, so a retried emit is a no-op.
CREATE TABLE webhook_events (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id      text NOT NULL,
    type        text NOT NULL,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL                -- the whole event object, as POSTed
);
CREATE INDEX webhook_events_run ON webhook_events (run_id);

-- One row per (event, endpoint): the delivery workflow's outcome, for operators and tests.
CREATE TABLE webhook_deliveries (
    event_id      text NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    webhook_id    text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    attempts      int NOT NULL DEFAULT 0,
    last_status   int,                                -- HTTP status of the last attempt, if any
    last_error    text,
    created_at    bigint NOT NULL,
    delivered_at  bigint,
    PRIMARY KEY (event_id, webhook_id)
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
