"""Issue 15: streamed built-in tool calls, part by part, as OpenAI streams them, through the
official SDK's `client.responses.stream(...)` helper: a file_search call is added in progress,
searches, completes; a code_interpreter call is added, its code streams as
`code_interpreter_call_code.delta`s (the model writing it) and is done, interpreted, completed. Every
`output_index` is the item's place in the final response, and a resumed stream replays the same."""

from __future__ import annotations

import openai
import pytest

from tests.tool_requests import code_response, zorblat_store

pytestmark = pytest.mark.timeout(300)


def _events(stream) -> list:  # type: ignore[no-untyped-def]
    with stream as s:
        return list(s)


def _of_item(events: list, item_id: str) -> list[str]:
    out = []
    for e in events:
        item = getattr(e, "item", None)
        if getattr(e, "item_id", None) == item_id or (item is not None and item.id == item_id):
            out.append(e.type)
    return out


def _check_indexes(events: list) -> None:
    final = events[-1].response
    ids = [o.id for o in final.output]
    for e in events:
        if e.type in ("response.output_item.added", "response.output_item.done"):
            assert ids[e.output_index] == e.item.id, (e.type, e.output_index, ids)
        elif hasattr(e, "item_id") and hasattr(e, "output_index"):
            assert ids[e.output_index] == e.item_id, (e.type, e.output_index, ids)
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))


def test_code_interpreter_call_streams_its_parts(client: openai.OpenAI, model_name: str) -> None:
    events = _events(
        client.responses.stream(**code_response(model_name, include=["code_interpreter_call.outputs"]))
    )
    final = events[-1].response
    assert final.status in ("completed", "incomplete"), final.error
    [call] = [o for o in final.output if o.type == "code_interpreter_call"]
    kinds = _of_item(events, call.id)
    deltas = [e.delta for e in events if e.type == "response.code_interpreter_call_code.delta"]
    assert deltas, kinds
    assert kinds[:2] == ["response.output_item.added", "response.code_interpreter_call.in_progress"]
    assert kinds[-4:] == [
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    assert set(kinds[2:-4]) == {"response.code_interpreter_call_code.delta"}
    [done] = [e for e in events if e.type == "response.code_interpreter_call_code.done"]
    assert "".join(deltas) == done.code == call.code and call.code.strip()
    [added] = [e for e in events if e.type == "response.output_item.added" and e.item.id == call.id]
    assert added.item.status == "in_progress" and added.item.code == ""
    [item_done] = [e for e in events if e.type == "response.output_item.done" and e.item.id == call.id]
    assert item_done.item.status == "completed" and item_done.item.outputs
    _check_indexes(events)

    # A resumed stream replays the same events, numbered the same.
    cut = events[3].sequence_number
    resumed = _events(client.responses.stream(response_id=final.id, starting_after=cut))
    assert [(e.sequence_number, e.type) for e in resumed] == [(e.sequence_number, e.type) for e in events[4:]]


def test_file_search_call_streams_its_parts(client: openai.OpenAI, model_name: str) -> None:
    store = zorblat_store(client, "zoo-stream")
    events = _events(
        client.responses.stream(
            model=model_name,
            input="What does the zorblat eat?",
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
            tool_choice={"type": "file_search"},
            temperature=0,
            max_output_tokens=60,
            include=["file_search_call.results"],
        )
    )
    final = events[-1].response
    assert final.status in ("completed", "incomplete"), final.error
    [call] = [o for o in final.output if o.type == "file_search_call"]
    assert _of_item(events, call.id) == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    [item_done] = [e for e in events if e.type == "response.output_item.done" and e.item.id == call.id]
    assert item_done.item.status == "completed" and item_done.item.results
    _check_indexes(events)
