"""Temporal payloads are encrypted at rest (assistants/codec.py): the codec alone (round trip, key
rotation, pass-through of unencrypted payloads, committed histories still replay), and on the
real stack: a run's history read WITHOUT the codec holds only ciphertext, the stack's own client
reads it, and the codec endpoint the Temporal UI uses decodes for the operator only."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from assistants.codec import ENCODING, EncryptionCodec, data_converter
from assistants.keyring import OPERATOR_TOKEN_FILE, Keyring, UnknownKey
from tests.stackutil import StackHandle
from workflows.run import RunWorkflow

HISTORIES = Path(__file__).parent / "histories"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"thread_id":"thread_abc"}')


async def test_round_trip_and_pass_through() -> None:
    codec = EncryptionCodec(Keyring.of(b"k" * 32))
    [sealed] = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING and b"thread_abc" not in sealed.data
    assert await codec.decode([sealed]) == [PLAIN]
    # Unencrypted payloads (histories recorded before encryption) pass through unchanged.
    assert await codec.decode([PLAIN]) == [PLAIN]


async def test_rotation_old_key_decrypts_new_key_encrypts() -> None:
    old, new = b"o" * 32, b"n" * 32
    [by_old] = await EncryptionCodec(Keyring.of(old)).encode([PLAIN])
    rotated = EncryptionCodec(Keyring.of(new, (old,)))
    assert await rotated.decode([by_old]) == [PLAIN]
    [by_new] = await rotated.encode([PLAIN])
    assert by_new.metadata["encryption-key-id"] != by_old.metadata["encryption-key-id"]
    with pytest.raises(UnknownKey):  # the old key alone cannot read what the new key wrote
        await EncryptionCodec(Keyring.of(old)).decode([by_new])


async def test_committed_histories_replay_through_the_codec() -> None:
    """Histories recorded unencrypted replay with a worker that has the codec."""
    replayer = Replayer(workflows=[RunWorkflow], data_converter=data_converter(Keyring.of(b"k" * 32)))
    paths = sorted(HISTORIES.glob("run_*.json"))
    assert paths
    for path in paths:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


# --- the real stack -----------------------------------------------------------------------------


def _payloads(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(path, Payload) for every Payload in a history's JSON, except two kinds that are not ours to
    encrypt: search attributes (Temporal indexes them; ids only) and the SDK's patch markers (the
    patch's name, written by the SDK core, see test_workflow_run's pre-patch test)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            out.append((path, node))
        for key, value in node.items():
            if key not in ("searchAttributes", "patch-data"):
                out += _payloads(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _payloads(value, f"{path}[{i}]")
    return out


@pytest.fixture(scope="module")
def finished_run(client: openai.OpenAI, assistant) -> Any:  # type: ignore[no-untyped-def]
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "canary-7f3a: say hi"}]},
        max_completion_tokens=3,
        poll_interval_ms=200,
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    return run


def test_history_without_the_codec_holds_only_ciphertext(stack: StackHandle, finished_run: Any) -> None:
    ns = httpx.get(stack.api_url + "/health").json()["temporal_namespace"]

    async def fetch() -> tuple[WorkflowHistory, WorkflowHistory, Client]:
        raw = await Client.connect(stack.stack_info()["temporal_address"], namespace=ns)  # no codec
        ours = await stack.temporal(ns)
        return (
            await raw.get_workflow_handle(finished_run.id).fetch_history(),
            await ours.get_workflow_handle(finished_run.id).fetch_history(),
            ours,
        )

    raw, _, ours = asyncio.run(fetch())
    doc = raw.to_json_dict()
    found = _payloads(doc)
    assert len(found) >= 5  # input, memo, activity inputs and results
    clear = [(where, base64.b64decode(p["metadata"]["encoding"])) for where, p in found]
    assert all(encoding == ENCODING for _, encoding in clear), [c for c in clear if c[1] != ENCODING]
    payloads = [p for _, p in found]
    text = json.dumps(doc)
    for plain in (finished_run.thread_id, finished_run.assistant_id, "canary-7f3a"):
        assert all(plain.encode() not in base64.b64decode(p["data"]) for p in payloads), plain
    assert "canary-7f3a" not in text

    # With the codec, the workflow's input reads back: it names the thread.
    started = raw.events[0].workflow_execution_started_event_attributes.input.payloads
    [decoded] = asyncio.run(ours.data_converter.payload_codec.decode(started))  # type: ignore[union-attr]
    assert finished_run.thread_id.encode() in decoded.data


def _codec_request(
    stack: StackHandle, path: str, payloads: list[dict[str, Any]], **headers: str
) -> httpx.Response:
    return httpx.post(stack.api_url + path, json={"payloads": payloads}, headers=headers, timeout=30)


def test_codec_endpoint_decodes_for_the_operator_only(
    stack: StackHandle, finished_run: Any, api_key: str
) -> None:
    async def started_input() -> list[dict[str, Any]]:
        raw = await Client.connect(stack.stack_info()["temporal_address"])
        history = await raw.get_workflow_handle(finished_run.id).fetch_history()
        return history.to_json_dict()["events"][0]["workflowExecutionStartedEventAttributes"]["input"][
            "payloads"
        ]

    sealed = asyncio.run(started_input())
    token = (stack.data_dir / OPERATOR_TOKEN_FILE).read_text().strip()

    ok = _codec_request(stack, "/codec/decode", sealed, authorization=f"Bearer {token}")
    assert ok.status_code == 200, ok.text
    [plain] = ok.json()["payloads"]
    assert base64.b64decode(plain["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(plain["data"]))["thread_id"] == finished_run.thread_id
    # The form the embedded UI uses (it cannot send headers): the token in the path.
    assert _codec_request(stack, f"/codec/t/{token}/decode", sealed).json() == ok.json()
    # encode then decode is the identity.
    again = _codec_request(stack, "/codec/encode", ok.json()["payloads"], authorization=f"Bearer {token}")
    assert base64.b64decode(again.json()["payloads"][0]["metadata"]["encoding"]) == ENCODING
    back = _codec_request(stack, "/codec/decode", again.json()["payloads"], authorization=f"Bearer {token}")
    assert back.json() == ok.json()

    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Bearer {api_key}"}):
        denied = _codec_request(stack, "/codec/decode", sealed, **headers)
        assert denied.status_code == 401, (headers, denied.text)
        assert denied.json()["error"]["code"] == "invalid_api_key"
    assert _codec_request(stack, "/codec/t/wrong/decode", sealed).status_code == 401


def test_embedded_temporal_ui_decodes_through_the_codec_endpoint(stack: StackHandle) -> None:
    ui = stack.temporal_ui
    assert ui
    with urllib.request.urlopen(f"{ui}/api/v1/settings", timeout=10) as resp:
        endpoint = json.loads(resp.read())["Codec"]["Endpoint"]
    assert endpoint.startswith(stack.api_url + "/codec/"), endpoint
    # The browser's preflight from the UI's origin is allowed; another origin is not.
    preflight = httpx.options(
        endpoint + "/decode",
        headers={"origin": ui, "access-control-request-method": "POST"},
    )
    assert preflight.headers.get("access-control-allow-origin") == ui
    other = httpx.options(
        endpoint + "/decode",
        headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers
    token = (stack.data_dir / OPERATOR_TOKEN_FILE).read_text().strip()
    assert endpoint == f"{stack.api_url}/codec/t/{token}"
