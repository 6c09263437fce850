-- POST /v1/responses/input_tokens (issue 15): the request to count, held here while an inference
-- worker renders and counts it, so that the workflow's history carries only this row's id. The
-- API deletes the row once it has the answer; rows an API crash left behind are swept after a day.
CREATE TABLE input_token_counts (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX input_token_counts_created ON input_token_counts (created_at);
