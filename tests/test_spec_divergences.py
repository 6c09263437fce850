"""Issue 14 point 7: the remaining divergences from the official OpenAPI document, each through the
official `openai` SDK against the session stack. Expiry that the API would only reach after an
hour (files) or a day (vector stores) is brought forward in SQL, on the stack's own Postgres."""

from __future__ import annotations

import time
from typing import Any

import openai
import psycopg
import pytest

from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)
RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
WEATHER_TOOL: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FORCE: Any = {"type": "function", "function": {"name": "get_weather"}}
ZORBLAT = b"# Zorblat\nThe zorblat is a purple fish that lives in Lake Quibble and eats moonweed at night.\n"
GLIMMER = b"# Glimmerbeak\nThe glimmerbeak is a copper bird that nests in Mount Vell and sings at dawn.\n"


def _sql(stack: StackHandle, query: str, params: tuple[Any, ...]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(query, params)  # type: ignore[arg-type]


def _store(client: openai.OpenAI, *docs: tuple[str, bytes], **kw: Any) -> Any:
    store = client.vector_stores.create(name="spec", **kw)
    for name, body in docs:
        f = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=(name, body))
        assert f.status == "completed", f.last_error
    return store


def _bad(call: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as err:
        call()
    assert isinstance(err.value.body, dict) and err.value.body.get("message"), err.value.body
    return err.value


# --- additional_messages[].attachments --------------------------------------------------------


def test_additional_message_attachments_join_the_thread_store(client: openai.OpenAI, assistant: Any) -> None:
    f = client.files.create(file=("zorblat.md", ZORBLAT), purpose="assistants")
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_completion_tokens=2,
        poll_interval_ms=200,
        additional_messages=[
            {
                "role": "user",
                "content": "What does the zorblat eat?",
                "attachments": [{"file_id": f.id, "tools": [{"type": "file_search"}]}],
            }
        ],
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    resources = client.beta.threads.retrieve(thread.id).tool_resources
    assert resources and resources.file_search and resources.file_search.vector_store_ids
    [store_id] = resources.file_search.vector_store_ids
    assert [x.id for x in client.vector_stores.files.list(vector_store_id=store_id).data] == [f.id]
    # Checked as before: a file of no one's is a 404 naming the parameter.
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[
                {"role": "user", "content": "x", "attachments": [{"file_id": "file-nope", "tools": []}]}
            ],
        )


# --- include[] on run create ----------------------------------------------------------------


def _search_step_results(events: list[Any]) -> list[list[Any]]:
    out = []
    for e in events:
        if e.event.startswith("thread.run.step.") and e.event != "thread.run.step.delta":
            for call in getattr(e.data.step_details, "tool_calls", None) or []:
                if call.type == "file_search":
                    out.append(call.file_search.results or [])
    return out


def test_run_include_shapes_streamed_and_listed_steps(client: openai.OpenAI, model_name: str) -> None:
    store = _store(client, ("zorblat.md", ZORBLAT))
    a = client.beta.assistants.create(
        model=model_name,
        temperature=0,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    streamed: dict[bool, list[list[Any]]] = {}
    runs = {}
    for include in (True, False):
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "What does the zorblat eat?"}]
        )
        kw: Any = {"include": [RESULT_CONTENT]} if include else {}
        events = list(
            client.beta.threads.runs.create(
                thread_id=thread.id,
                assistant_id=a.id,
                tool_choice={"type": "file_search"},
                max_completion_tokens=60,
                stream=True,
                **kw,
            )
        )
        assert events[-1].event in ("thread.run.completed", "thread.run.incomplete"), events[
            -1
        ].data.last_error
        streamed[include] = _search_step_results(events)
        runs[include] = (thread.id, events[-1].data.id)
    # thread.run.step.created carries no results yet; the completed step does, with or without text.
    shown = {k: [r for r in v if r] for k, v in streamed.items()}
    assert shown[True] and all(r[0].content and "moonweed" in r[0].content[0].text for r in shown[True])
    assert shown[False] and all(not r[0].content for r in shown[False])
    thread_id, run_id = runs[False]
    plain = client.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id, order="asc").data[0]
    full = client.beta.threads.runs.steps.retrieve(
        plain.id, run_id=run_id, thread_id=thread_id, include=[RESULT_CONTENT]
    )
    assert not plain.step_details.tool_calls[0].file_search.results[0].content  # type: ignore[union-attr]
    assert full.step_details.tool_calls[0].file_search.results[0].content  # type: ignore[union-attr]
    err = _bad(
        lambda: client.beta.threads.runs.create(
            thread_id=thread_id,
            assistant_id=a.id,
            include=["step_details.nope"],  # type: ignore[list-item]
        )
    )
    assert err.param == "include"


# --- steps a run ends carry last_error ---------------------------------------------------------


def _waiting_run(client: openai.OpenAI, assistant_id: str) -> tuple[str, Any]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant_id,
        tools=WEATHER_TOOL,
        tool_choice=FORCE,
        poll_interval_ms=200,
    )
    assert run.status == "requires_action", run.last_error
    return thread.id, run


def test_cancelled_and_expired_steps_carry_last_error(client: openai.OpenAI, model_name: str) -> None:
    a = client.beta.assistants.create(model=model_name, temperature=0, metadata={"run_expires_seconds": "3"})
    thread_id, run = _waiting_run(client, a.id)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    run = client.beta.threads.runs.poll(run.id, thread_id=thread_id, poll_interval_ms=200)
    assert run.status == "cancelled"
    [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread_id).data
    assert step.status == "cancelled" and step.cancelled_at and step.last_error, step
    assert step.last_error.code == "server_error" and "cancelled" in step.last_error.message

    thread_id, run = _waiting_run(client, a.id)
    deadline = time.time() + 60
    while run.status == "requires_action" and time.time() < deadline:
        time.sleep(0.5)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert run.status == "expired", run.status
    [step] = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread_id).data
    assert step.status == "expired" and step.expired_at and step.last_error, step
    assert step.last_error.code == "server_error" and "expired" in step.last_error.message


# --- modify keeps metadata it is not sent -----------------------------------------------------


def test_modify_message_and_run_keep_metadata(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create()
    msg = client.beta.threads.messages.create(thread.id, role="user", content="hi", metadata={"k": "v"})
    assert client.beta.threads.messages.update(msg.id, thread_id=thread.id).metadata == {"k": "v"}
    assert client.beta.threads.messages.retrieve(msg.id, thread_id=thread.id).metadata == {"k": "v"}
    replaced = client.beta.threads.messages.update(msg.id, thread_id=thread.id, metadata={"n": "1"})
    assert replaced.metadata == {"n": "1"}  # sent metadata replaces the map
    assert client.beta.threads.messages.update(msg.id, thread_id=thread.id, metadata={}).metadata == {}

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        metadata={"r": "1"},
        max_completion_tokens=2,
        poll_interval_ms=200,
    )
    assert client.beta.threads.runs.update(run.id, thread_id=thread.id).metadata == {"r": "1"}
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).metadata == {"r": "1"}
    assert client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata=None).metadata == {}


# --- no 32-item caps ----------------------------------------------------------------------------


def test_more_than_32_messages(client: openai.OpenAI, assistant: Any) -> None:
    many: Any = [{"role": "user", "content": f"note {i}"} for i in range(40)]
    thread = client.beta.threads.create(messages=many)
    assert len(client.beta.threads.messages.list(thread.id, limit=100).data) == 40
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, additional_messages=many
    )
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert len(client.beta.threads.messages.list(thread.id, limit=100).data) == 80


# --- metadata and attributes limits on vector stores -------------------------------------------


def test_vector_store_metadata_and_attribute_limits(client: openai.OpenAI) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    for meta in (too_many, {"k" * 65: "v"}, {"k": "v" * 513}):
        _bad(lambda m=meta: client.vector_stores.create(name="x", metadata=m))
    store = client.vector_stores.create(name="x", metadata={"k": "v"})
    _bad(lambda: client.vector_stores.update(store.id, metadata=too_many))
    f = client.files.create(file=("a.md", ZORBLAT), purpose="assistants")
    for attrs in ({f"k{i}": 1 for i in range(17)}, {"k" * 65: True}, {"k": "v" * 513}):
        _bad(
            lambda a=attrs: client.vector_stores.files.create(
                vector_store_id=store.id, file_id=f.id, attributes=a
            )
        )
        _bad(
            lambda a=attrs: client.vector_stores.file_batches.create(
                vector_store_id=store.id, file_ids=[f.id], attributes=a
            )
        )
    ok = client.vector_stores.files.create(
        vector_store_id=store.id, file_id=f.id, attributes={"k": "v" * 512, "n": 3, "b": True}
    )
    _bad(lambda: client.vector_stores.files.update(ok.id, vector_store_id=store.id, attributes=too_many))


# --- ranges -------------------------------------------------------------------------------------


def test_file_expires_after_range(client: openai.OpenAI) -> None:
    for seconds in (60, 2_592_001):
        err = _bad(
            lambda s=seconds: client.files.create(
                file=("a.txt", b"x"),
                purpose="assistants",
                expires_after={"anchor": "created_at", "seconds": s},
            )
        )
        assert err.param == "expires_after.seconds"
    err = _bad(
        lambda: client.files.create(
            file=("a.txt", b"x"),
            purpose="assistants",
            expires_after={"anchor": "last_active_at", "seconds": 3600},  # type: ignore[typeddict-item]
        )
    )
    assert err.param == "expires_after.anchor"
    f = client.files.create(
        file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert f.expires_at == f.created_at + 3600


def test_max_prompt_tokens_minimum(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create()
    _bad(
        lambda: client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=255
        )
    )


# --- expired files and vector stores -----------------------------------------------------------


def test_expired_file_is_gone(stack: StackHandle, client: openai.OpenAI) -> None:
    f = client.files.create(
        file=("a.txt", b"secret"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert client.files.content(f.id).read() == b"secret"
    _sql(
        stack,
        "UPDATE files SET data = data || jsonb_build_object('expires_at', %s::bigint) WHERE id = %s",
        (int(time.time()) - 1, f.id),
    )
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": f.id, "tools": [{"type": "file_search"}]}],
        )


def test_expired_vector_store_is_not_searched(
    stack: StackHandle, client: openai.OpenAI, model_name: str
) -> None:
    store = _store(client, ("zorblat.md", ZORBLAT), expires_after={"anchor": "last_active_at", "days": 1})
    assert client.vector_stores.search(store.id, query="zorblat").data
    _sql(
        stack,
        "UPDATE vector_stores SET data = data || jsonb_build_object('expires_at', %s::bigint) WHERE id = %s",
        (int(time.time()) - 1, store.id),
    )
    assert client.vector_stores.retrieve(store.id).status == "expired"
    err = _bad(lambda: client.vector_stores.search(store.id, query="zorblat"))
    assert err.code == "vector_store_expired"
    a = client.beta.assistants.create(
        model=model_name,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What does the zorblat eat?"}])
    err = _bad(lambda: client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id))
    assert err.code == "vector_store_expired" and store.id in err.message


# --- vector store search: rewrite_query and an array query --------------------------------------


def test_search_rewrite_query_and_array_query(client: openai.OpenAI) -> None:
    store = _store(client, ("zorblat.md", ZORBLAT), ("glimmer.md", GLIMMER))
    page = client.vector_stores.search(store.id, query="What does the Zorblat eat?", rewrite_query=True)
    assert page.search_query == ["zorblat eat"]  # type: ignore[comparison-overlap]
    plain = client.vector_stores.search(store.id, query="What does the Zorblat eat?")
    assert plain.search_query == ["What does the Zorblat eat?"]  # type: ignore[comparison-overlap]

    queries = ["purple fish moonweed", "copper bird singing at dawn"]
    merged = client.vector_stores.search(store.id, query=queries, max_num_results=10)
    assert merged.search_query == queries  # type: ignore[comparison-overlap]
    scores = [r.score for r in merged.data]
    assert scores == sorted(scores, reverse=True)
    by_chunk = {(r.file_id, r.content[0].text): r.score for r in merged.data}
    for q in queries:
        top = client.vector_stores.search(store.id, query=q, max_num_results=1).data[0]
        # Each query is searched as given: its best hit is in the merge at the very same score.
        assert by_chunk[(top.file_id, top.content[0].text)] == pytest.approx(top.score)
