-- Responses API (issue 15). A response is a view of a run: `run_id` names the run that executes
-- it (the run's messages, steps, usage and event log are the source of truth); `data` holds what
-- the request asked for (model, instructions, tools, text, input items, ...). A response that
-- submits function outputs to a waiting run shares that run with the response before it.
CREATE TABLE responses (
    seq         bigserial UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    thread_id   text NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    run_id      text REFERENCES runs(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX responses_project_seq ON responses (project_id, seq);
CREATE INDEX responses_run ON responses (run_id);
