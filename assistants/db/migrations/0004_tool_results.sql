-- Results of every tool call of a run, keyed by the call id (issue: durable at scale).
-- Workflow history carries call ids only; the text the model reads next comes from here.
--   - built-in calls (code_interpreter, file_search): written once by the run_builtin_tools
--     activity before it returns; a retried activity finds the row and does not re-execute.
--   - function calls: written by the API when the client submits tool outputs, before it
--     signals the workflow.
CREATE TABLE run_tool_results (
    seq         bigserial UNIQUE,          -- execution order (code cells replay in this order)
    call_id     text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id      text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id     text NOT NULL,
    type        text NOT NULL,                 -- function | code_interpreter | file_search
    output      text NOT NULL,                 -- what the model reads next
    detail      jsonb,                         -- the call in the step's official shape (built-ins)
    thread_id   text NOT NULL,
    created_at  bigint NOT NULL
);
CREATE INDEX run_tool_results_run ON run_tool_results (run_id);
CREATE INDEX run_tool_results_thread ON run_tool_results (thread_id, seq);

-- One row per model turn of a run, written by the generate activity in the same transaction that
-- finishes the turn's message and step. A retried generate finds it and returns it instead of
-- generating again; the next turn's prompt reads the run's earlier tool calls from here.
CREATE TABLE run_turns (
    run_id      text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    turn        int NOT NULL,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    output      jsonb NOT NULL,                -- GenerateOutput: finish reason, usage, tool calls
    created_at  bigint NOT NULL,
    PRIMARY KEY (run_id, turn)
);
