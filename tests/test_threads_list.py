"""Issue 14 item 6: GET /v1/threads, an extension (OpenAI has no thread listing), through the
official SDK's low-level `client.get`: cursor pagination like every other list, a
`metadata[key]=value` filter, and project scoping."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.timeout(300)


def _list(client: openai.OpenAI, **params: Any) -> dict[str, Any]:
    return client.get("/threads", cast_to=httpx.Response, options={"params": params}).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tagged(client: openai.OpenAI) -> tuple[str, list[str]]:
    """Five threads of one test run (oldest first), tagged so other tests' threads do not count."""
    tag = uuid.uuid4().hex
    ids = [
        client.beta.threads.create(metadata={"suite": tag, "n": str(i), "even": str(i % 2 == 0)}).id
        for i in range(5)
    ]
    return tag, ids


def test_lists_newest_first_with_the_list_envelope(
    client: openai.OpenAI, tagged: tuple[str, list[str]]
) -> None:
    tag, ids = tagged
    page = _list(client, **{"metadata[suite]": tag})
    assert page["object"] == "list" and page["has_more"] is False
    assert [t["id"] for t in page["data"]] == ids[::-1]
    assert page["first_id"] == ids[-1] and page["last_id"] == ids[0]
    assert all(t["object"] == "thread" for t in page["data"])


def test_cursor_pagination_both_ways(client: openai.OpenAI, tagged: tuple[str, list[str]]) -> None:
    tag, ids = tagged
    f = {"metadata[suite]": tag}
    first = _list(client, limit=2, order="asc", **f)
    assert [t["id"] for t in first["data"]] == ids[:2] and first["has_more"] is True
    second = _list(client, limit=2, order="asc", after=first["last_id"], **f)
    assert [t["id"] for t in second["data"]] == ids[2:4] and second["has_more"] is True
    third = _list(client, limit=2, order="asc", after=second["last_id"], **f)
    assert [t["id"] for t in third["data"]] == ids[4:] and third["has_more"] is False
    back = _list(client, limit=2, order="asc", before=ids[4], **f)
    assert [t["id"] for t in back["data"]] == ids[2:4]
    desc = _list(client, limit=2, order="desc", after=ids[3], **f)
    assert [t["id"] for t in desc["data"]] == [ids[2], ids[1]]


def test_metadata_filter_keeps_threads_holding_every_pair(
    client: openai.OpenAI, tagged: tuple[str, list[str]]
) -> None:
    tag, ids = tagged
    even = _list(client, **{"metadata[suite]": tag, "metadata[even]": "True"})
    assert [t["id"] for t in even["data"]] == [ids[4], ids[2], ids[0]]
    one = _list(client, **{"metadata[suite]": tag, "metadata[n]": "3"})
    assert [t["id"] for t in one["data"]] == [ids[3]]
    assert _list(client, **{"metadata[suite]": tag, "metadata[n]": "9"})["data"] == []
    # A thread whose metadata is modified is found by its new value.
    client.beta.threads.update(ids[1], metadata={"suite": tag, "n": "1", "renamed": "yes"})
    assert [
        t["id"] for t in _list(client, **{"metadata[renamed]": "yes", "metadata[suite]": tag})["data"]
    ] == [ids[1]]


def test_project_scoped_and_bad_params_are_envelopes(
    client: openai.OpenAI, other_client: openai.OpenAI, tagged: tuple[str, list[str]]
) -> None:
    tag, _ = tagged
    assert _list(other_client, **{"metadata[suite]": tag})["data"] == []
    mine = other_client.beta.threads.create(metadata={"suite": tag})
    assert [t["id"] for t in _list(other_client, **{"metadata[suite]": tag})["data"]] == [mine.id]
    for params in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}):
        with pytest.raises(openai.BadRequestError) as exc:
            client.get("/threads", cast_to=httpx.Response, options={"params": params})
        assert set(exc.value.response.json()["error"]) == {"message", "type", "param", "code"}
