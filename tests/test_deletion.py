"""Deleting means gone (issue 12 item 5), through the real stack and the official SDK.

- A file deleted while its ingestion is writing chunks never becomes searchable.
- `tool_resources` and attachment ids from another project (or unknown ones) are refused, never stored.
- Deleting a vector store a thread points at leaves the thread usable.
"""

from __future__ import annotations

import threading
import time
import uuid

import openai
import psycopg
import pytest

from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(600)


def _waiting(conn: psycopg.Connection, prefix: str) -> int:  # type: ignore[type-arg]
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        (prefix + "%",),
    ).fetchone()
    return int(row[0]) if row else 0


def _until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_file_deleted_mid_ingestion_is_never_searchable(client: openai.OpenAI, stack: StackHandle) -> None:
    """The ingestion's final transaction (chunks + `completed`) and DELETE /v1/files race: the test
    holds the store's row lock that this transaction takes last (touch_store), so the race
    window is held open deterministically: chunks written, file deleted, then the write commits."""
    term = f"Quokkalumen{uuid.uuid4().hex[:8]}"
    store = client.vector_stores.create(name="delete-race")
    f = client.files.create(file=("race.txt", f"The secret word is {term}.\n".encode()), purpose="assistants")
    # A first file warms the embedder, so the race below does not wait on a model load.
    client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("warm.txt", b"warm up text"), poll_interval_ms=200
    )
    with (
        psycopg.connect(stack.database_url, autocommit=True) as watch,
        psycopg.connect(stack.database_url) as lock,
    ):
        client.vector_stores.files.create(vector_store_id=store.id, file_id=f.id)
        # NO KEY UPDATE: blocks touch_store's UPDATE, not the chunks' foreign-key checks.
        lock.execute("SELECT 1 FROM vector_stores WHERE id = %s FOR NO KEY UPDATE", (store.id,))
        _until(lambda: _waiting(watch, "UPDATE vector_stores") >= 1, 120, "the chunk write to block")
        deleted: list[object] = []
        t = threading.Thread(target=lambda: deleted.append(client.files.delete(f.id)))
        t.start()
        _until(lambda: _waiting(watch, "DELETE FROM vector_store_files") >= 1, 30, "the delete to block")
        lock.rollback()  # release: the ingestion commits first, then the delete
        t.join(60)
    assert deleted and getattr(deleted[0], "deleted", False)
    for _ in range(2):  # right away, and again once anything still in flight has settled
        hits = list(client.vector_stores.search(store.id, query=term, max_num_results=10))
        assert all(h.file_id != f.id for h in hits), [(h.file_id, h.filename) for h in hits]
        time.sleep(2)
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM vector_store_chunks WHERE file_id = %s", (f.id,)).fetchone()
    assert row is not None and row[0] == 0


@pytest.fixture(scope="module")
def foreign(other_client: openai.OpenAI) -> tuple[str, str]:
    f = other_client.files.create(file=("theirs.txt", b"not yours"), purpose="assistants")
    vs = other_client.vector_stores.create(name="theirs")
    return f.id, vs.id


def _refused(call) -> openai.APIStatusError:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.APIStatusError) as info:
        call()
    err = info.value
    assert err.status_code in (400, 404), err
    assert isinstance(err.body, dict) and err.body.get("message"), err.body
    return err


@pytest.mark.parametrize("which", ["foreign", "unknown"])
def test_foreign_or_unknown_ids_are_refused(
    client: openai.OpenAI, model_name: str, foreign: tuple[str, str], which: str
) -> None:
    file_id, store_id = foreign if which == "foreign" else ("file-doesnotexist", "vs_doesnotexist")
    fs = {"file_search": {"vector_store_ids": [store_id]}}
    ci = {"code_interpreter": {"file_ids": [file_id]}}
    ci_attach = [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}]
    fs_attach = [{"file_id": file_id, "tools": [{"type": "file_search"}]}]

    n_assistants = len(list(client.beta.assistants.list(limit=100)))
    for tr in (fs, ci):
        _refused(lambda tr=tr: client.beta.assistants.create(model=model_name, tool_resources=tr))  # type: ignore[misc]
        _refused(lambda tr=tr: client.beta.threads.create(tool_resources=tr))  # type: ignore[misc]
    assert len(list(client.beta.assistants.list(limit=100))) == n_assistants  # nothing stored

    asst = client.beta.assistants.create(model=model_name, tools=[{"type": "file_search"}])
    thread = client.beta.threads.create()
    for tr in (fs, ci):
        _refused(lambda tr=tr: client.beta.assistants.update(asst.id, tool_resources=tr))  # type: ignore[misc]
        _refused(lambda tr=tr: client.beta.threads.update(thread.id, tool_resources=tr))  # type: ignore[misc]
        _refused(
            lambda tr=tr: client.beta.threads.create_and_run(assistant_id=asst.id, tool_resources=tr)  # type: ignore[misc]
        )
    assert client.beta.assistants.retrieve(asst.id).tool_resources.file_search is None  # type: ignore[union-attr]
    assert client.beta.threads.retrieve(thread.id).tool_resources.file_search is None  # type: ignore[union-attr]
    for att in (ci_attach, fs_attach):
        _refused(
            lambda att=att: client.beta.threads.messages.create(
                thread.id, role="user", content="hi", attachments=att
            )  # type: ignore[misc]
        )
        _refused(
            lambda att=att: client.beta.threads.create(  # type: ignore[misc]
                messages=[{"role": "user", "content": "hi", "attachments": att}]
            )
        )
        _refused(
            lambda att=att: client.beta.threads.runs.create(  # type: ignore[misc]
                thread.id,
                assistant_id=asst.id,
                additional_messages=[{"role": "user", "content": "hi", "attachments": att}],
            )
        )
    image = [{"type": "image_file", "image_file": {"file_id": file_id}}]
    _refused(lambda: client.beta.threads.messages.create(thread.id, role="user", content=image))  # type: ignore[arg-type]
    _refused(lambda: client.beta.threads.create(messages=[{"role": "user", "content": image}]))  # type: ignore[list-item]
    _refused(
        lambda: client.beta.threads.runs.create(
            thread.id,
            assistant_id=asst.id,
            additional_messages=[{"role": "user", "content": image}],  # type: ignore[list-item]
        )
    )
    assert list(client.beta.threads.messages.list(thread.id)) == []
    assert list(client.beta.threads.runs.list(thread.id)) == []


def test_deleted_vector_store_leaves_thread_usable(client: openai.OpenAI, model_name: str) -> None:
    doc = client.files.create(file=("notes.txt", b"Pelicans nest on islands."), purpose="assistants")
    store = client.vector_stores.create(name="to-delete", file_ids=[doc.id])
    asst = client.beta.assistants.create(
        model=model_name, tools=[{"type": "file_search"}], instructions="Be brief.", temperature=0
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Where do pelicans nest?"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    assert client.vector_stores.delete(store.id).deleted

    assert len(list(client.beta.threads.messages.list(thread.id))) == 1
    assert client.beta.threads.retrieve(thread.id).id == thread.id
    # A file_search attachment needs a live store: the thread gets a new one instead of a 500.
    msg = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="And this file?",
        attachments=[{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
    )
    assert msg.attachments and msg.attachments[0].file_id == doc.id
    new_ids = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert new_ids and store.id not in new_ids
    assert len(list(client.beta.threads.messages.list(thread.id))) == 2

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=32, poll_interval_ms=500
    )
    assert run.status in ("completed", "incomplete"), (run.status, run.last_error)
    assert len(list(client.beta.threads.messages.list(thread.id))) >= 3
