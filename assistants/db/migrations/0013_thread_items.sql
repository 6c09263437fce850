-- Issue 25: the items of a conversation that are not messages, given as a response's input
-- (a stateless client re-sends its whole history): function calls and their outputs (also calls
-- this server never made), custom / shell / apply_patch calls and outputs, reasoning items and
-- built-in call items replayed as history. `seq` comes from the messages' own sequence, so a
-- thread's messages and items read in one order (activities/prompt.py renders them as the
-- model's chat template expects; api/conversation_items.py lists them). One writer:
-- assistants/db/thread_items.py.
CREATE TABLE thread_items (
    seq         bigint NOT NULL DEFAULT nextval('messages_seq_seq') UNIQUE,
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    thread_id   text NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    data        jsonb NOT NULL
);
CREATE INDEX thread_items_thread_seq ON thread_items (thread_id, seq);
