"""Vector stores end to end through the official SDK: ingestion of every format, hybrid search,
failures, batches, filters, counts and project isolation. Needs a running worker (the embedding
model loads on its first ingestion)."""

from __future__ import annotations

import openai
import pytest

from tests.file_samples import corpus

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def corpus_store(client: openai.OpenAI):  # type: ignore[no-untyped-def]
    """One store holding one file of every format, each ingested with upload_and_poll."""
    store = client.vector_stores.create(name="corpus")
    ids = {}
    for name, (data, _q, _term) in corpus().items():
        vf = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=(name, data), poll_interval_ms=300
        )
        assert vf.status == "completed", (name, vf.last_error)
        ids[name] = vf.id
    return store, ids


def test_every_format_ingests_and_counts_are_true(client: openai.OpenAI, corpus_store) -> None:  # type: ignore[no-untyped-def]
    store, ids = corpus_store
    s = client.vector_stores.retrieve(store.id)
    assert s.status == "completed"
    assert (s.file_counts.completed, s.file_counts.total, s.file_counts.in_progress) == (
        len(ids),
        len(ids),
        0,
    )
    files = list(client.vector_stores.files.list(store.id, filter="completed"))
    assert {f.id for f in files} == set(ids.values())
    assert s.usage_bytes == sum(f.usage_bytes for f in files) > 0
    assert files[0].chunking_strategy.type == "static"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(corpus()))
def test_search_ranks_the_right_file_first(client: openai.OpenAI, corpus_store, name: str) -> None:  # type: ignore[no-untyped-def]
    store, ids = corpus_store
    _data, question, term = corpus()[name]
    for query in (question, term):  # a paraphrased question, and an exact rare term
        results = list(client.vector_stores.search(store.id, query=query, max_num_results=5))
        assert results, query
        assert results[0].file_id == ids[name], (query, [(r.filename, r.score) for r in results])
        assert results[0].filename == name and 0.0 <= results[0].score <= 1.0
        assert results[0].content[0].type == "text" and results[0].content[0].text


def test_score_threshold_and_max_results(client: openai.OpenAI, corpus_store) -> None:  # type: ignore[no-untyped-def]
    store, _ = corpus_store
    many = list(client.vector_stores.search(store.id, query="bread", max_num_results=3))
    assert len(many) == 3
    assert [r.score for r in many] == sorted((r.score for r in many), reverse=True)
    top = many[0].score
    strict = list(
        client.vector_stores.search(store.id, query="bread", ranking_options={"score_threshold": top - 1e-6})
    )
    assert len(strict) == 1 and strict[0].file_id == many[0].file_id
    assert not list(
        client.vector_stores.search(store.id, query="bread", ranking_options={"score_threshold": 1.0})
    )


def test_garbage_pdf_fails_with_last_error(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="garbage")
    vf = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("garbage.pdf", b"%PDF-1.7\n\x00\xff garbage " * 50),
        poll_interval_ms=300,
    )
    assert vf.status == "failed"
    assert vf.last_error is not None and vf.last_error.code == "invalid_file" and vf.last_error.message
    png = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("image.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        poll_interval_ms=300,
    )
    assert png.status == "failed" and png.last_error and png.last_error.code == "unsupported_file"
    s = client.vector_stores.retrieve(store.id)
    assert (s.file_counts.failed, s.file_counts.completed, s.usage_bytes) == (2, 0, 0)
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="failed")] and not list(
        client.vector_stores.files.list(store.id, filter="completed")
    )


def test_file_batches_upload_and_poll_attributes_and_filters(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="batch",
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
        },
    )
    files = [
        ("alpha.txt", b"The alpha team builds rockets for the moon mission."),
        ("beta.txt", b"The beta team builds rockets for the mars mission."),
    ]
    batch = client.vector_stores.file_batches.upload_and_poll(store.id, files=files, poll_interval_ms=300)
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (2, 2)
    listed = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
    assert len(listed) == 2
    by_name = {client.files.retrieve(f.id).filename: f.id for f in listed}
    client.vector_stores.files.update(
        by_name["beta.txt"], vector_store_id=store.id, attributes={"team": "beta", "year": 2030}
    )
    client.vector_stores.files.update(
        by_name["alpha.txt"], vector_store_id=store.id, attributes={"team": "alpha", "year": 2025}
    )
    only_beta = list(
        client.vector_stores.search(
            store.id, query="rockets", filters={"type": "eq", "key": "team", "value": "beta"}
        )
    )
    assert {r.file_id for r in only_beta} == {by_name["beta.txt"]} and only_beta[0].attributes == {
        "team": "beta",
        "year": 2030,
    }
    early = list(
        client.vector_stores.search(
            store.id,
            query="rockets",
            filters={
                "type": "and",
                "filters": [
                    {"type": "lt", "key": "year", "value": 2028},
                    {"type": "in", "key": "team", "value": ["alpha", "x"]},
                ],
            },
        )
    )
    assert {r.file_id for r in early} == {by_name["alpha.txt"]}
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(
            store.id, query="rockets", filters={"type": "regex", "key": "team", "value": "b"}
        )  # type: ignore[arg-type]


def test_batch_cancel(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="cancel")
    fids = [
        client.files.create(file=(f"c{i}.txt", b"cancel me " * 200), purpose="assistants").id
        for i in range(3)
    ]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=fids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.id == batch.id
    final = client.vector_stores.file_batches.poll(batch.id, vector_store_id=store.id, poll_interval_ms=300)
    assert final.status in ("cancelled", "completed")  # files already done stay done
    assert final.file_counts.in_progress == 0
    assert final.file_counts.cancelled + final.file_counts.completed == 3


def test_store_crud_and_file_removal(client: openai.OpenAI) -> None:
    f = client.files.create(file=("note.txt", b"Remember the Glimmerwick code."), purpose="assistants")
    store = client.vector_stores.create(
        name="crud",
        file_ids=[f.id],
        expires_after={"anchor": "last_active_at", "days": 3},
        metadata={"k": "v"},
    )
    assert store.expires_after and store.expires_after.days == 3 and store.expires_at
    client.vector_stores.files.poll(f.id, vector_store_id=store.id, poll_interval_ms=300)
    assert list(client.vector_stores.search(store.id, query="Glimmerwick"))
    updated = client.vector_stores.update(store.id, name="renamed", metadata={"k": "w"})
    assert (updated.name, updated.metadata) == ("renamed", {"k": "w"})
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    assert client.vector_stores.files.delete(f.id, vector_store_id=store.id).deleted
    assert not list(client.vector_stores.search(store.id, query="Glimmerwick"))
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    assert client.files.retrieve(f.id).id == f.id  # the file itself stays
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_bad_chunking_strategy_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
            }
        )


def test_stores_are_scoped_to_their_project(
    client: openai.OpenAI, other_client: openai.OpenAI, corpus_store
) -> None:  # type: ignore[no-untyped-def]
    store, ids = corpus_store
    any_file = next(iter(ids.values()))
    for call in (
        lambda: other_client.vector_stores.retrieve(store.id),
        lambda: other_client.vector_stores.search(store.id, query="volcano"),
        lambda: other_client.vector_stores.files.list(store.id),
        lambda: other_client.vector_stores.files.retrieve(any_file, vector_store_id=store.id),
        lambda: other_client.vector_stores.delete(store.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    mine = other_client.vector_stores.create(name="b")
    with pytest.raises(openai.NotFoundError):  # another project's file cannot be added
        other_client.vector_stores.files.create(vector_store_id=mine.id, file_id=any_file)
    assert store.id not in [s.id for s in other_client.vector_stores.list(limit=100)]


def test_message_attachments_join_the_threads_store(client: openai.OpenAI) -> None:
    f = client.files.create(
        file=("memo.txt", b"The Pellucid project launches in March."), purpose="assistants"
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="see the memo",
        attachments=[{"file_id": f.id, "tools": [{"type": "file_search"}]}],
    )
    thread = client.beta.threads.retrieve(thread.id)
    ids = thread.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert ids and len(ids) == 1
    vf = client.vector_stores.files.poll(f.id, vector_store_id=ids[0], poll_interval_ms=300)
    assert vf.status == "completed"
    t2 = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "x",
                "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert t2.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
