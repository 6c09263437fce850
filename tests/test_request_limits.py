"""Body limits on the wire (issue 12 item 1), against a real stack whose upload limit is 1 MiB;
and the range of a run's max_completion_tokens (OpenAI: at least 256).

A raw socket sends bodies the way an attacker would (chunked, or slower than declared) and counts
how much of the body the server took before it answered: a server that buffers the whole body
first answers only after the last byte.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.stackutil import StackHandle, own_stack

MAX_FILE_BYTES = 1024**2
MAX_REQUEST_BYTES = 2 * 1024**2  # the default
ATTACK_BYTES = 128 * 1024**2
PIECE = 64 * 1024
# Loopback socket buffers hold a few MiB that the server never read; anything near ATTACK_BYTES
# means the server read the body.
SLACK = 24 * 1024**2


@pytest.fixture(scope="module")
def limited_stack() -> Iterator[StackHandle]:
    with own_stack(
        "assistants-bodylimits-",
        # The minimum completion budget at OpenAI's (and the product's) default, which the other
        # test stacks lower.
        env={"ASSISTANTS_MAX_FILE_BYTES": str(MAX_FILE_BYTES), "ASSISTANTS_MIN_COMPLETION_TOKENS": "256"},
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def key(limited_stack: StackHandle) -> str:
    return limited_stack.create_key("body-limits")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_pieces() -> Iterator[bytes]:
    """A valid JSON body of ATTACK_BYTES: `{"name": "x", "metadata": {"k": "aaaa...` ..."""
    yield _chunk(b'{"model": "smollm2-135m-instruct", "instructions": "')
    for _ in range(ATTACK_BYTES // PIECE):
        yield _chunk(b"a" * PIECE)
    yield _chunk(b'"}')
    yield b"0\r\n\r\n"


def _multipart_pieces() -> Iterator[bytes]:
    yield _chunk(
        b'--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    for _ in range(ATTACK_BYTES // PIECE):
        yield _chunk(b"\0" * PIECE)
    yield _chunk(b"\r\n--x--\r\n")
    yield b"0\r\n\r\n"


def _send_until_answered(
    port: int, head: str, pieces: Iterator[bytes], stall_after: int | None = None, wait: float = 60
) -> tuple[str, int]:
    """Send `head`, then body pieces while the server has not answered; return (answer, body
    bytes sent). With `stall_after`, stop sending after that many pieces and wait for the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)
    sock.settimeout(wait)
    sock.connect(("127.0.0.1", port))
    answer, sent = b"", 0
    with sock:
        sock.sendall(head.encode())
        for i, piece in enumerate(pieces):
            if stall_after is not None and i >= stall_after:
                break
            readable, writable, _ = select.select([sock], [sock], [], wait)
            if readable or not writable:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server answered and closed while we were sending
                break
            sent += len(piece)
        while not (b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}")):
            try:
                data = sock.recv(65536)
            except OSError:  # timed out, or reset after the answer
                break
            if not data:
                break
            answer += data
    return answer.decode(errors="replace"), sent


def _status_and_error(answer: str) -> tuple[int, dict]:
    assert answer.startswith("HTTP/1.1 "), f"no answer: {answer!r}"
    status = int(answer.split(" ", 2)[1])
    body = answer.split("\r\n\r\n", 1)[1]
    if "\r\n" in body.split("{", 1)[0]:  # a chunked answer: skip its size line
        body = body.split("\r\n", 1)[1]
    try:
        return status, json.loads(body[: body.rindex("}") + 1])["error"]
    except (ValueError, KeyError):
        raise AssertionError(f"not an error envelope: {answer!r}") from None


def _head(method: str, path: str, key: str | None, content_type: str, framing: str) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key is not None else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {content_type}\r\n"
        f"{framing}\r\n\r\n"
    )


def test_chunked_json_over_the_limit_is_413_without_buffering(limited_stack: StackHandle, key: str) -> None:
    head = _head("POST", "/v1/assistants", key, "application/json", "Transfer-Encoding: chunked")
    answer, sent = _send_until_answered(limited_stack.port, head, _json_pieces())
    status, error = _status_and_error(answer)
    assert status == 413, answer
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert sent < MAX_REQUEST_BYTES + SLACK, f"server read {sent} bytes before answering"


def test_chunked_upload_over_max_file_bytes_is_413_without_spooling(
    limited_stack: StackHandle, key: str
) -> None:
    client = openai.OpenAI(base_url=limited_stack.base_url, api_key=key, max_retries=0)
    before = [f.id for f in client.files.list()]
    head = _head("POST", "/v1/files", key, "multipart/form-data; boundary=x", "Transfer-Encoding: chunked")
    answer, sent = _send_until_answered(limited_stack.port, head, _multipart_pieces())
    status, error = _status_and_error(answer)
    assert status == 413, answer
    assert sent < MAX_FILE_BYTES + SLACK, f"server read {sent} bytes before answering"
    assert error["code"] == "request_too_large"
    assert [f.id for f in client.files.list()] == before


@pytest.mark.parametrize(
    ("path", "content_type", "framing", "pieces"),
    [
        ("/v1/assistants", "application/json", "Transfer-Encoding: chunked", _json_pieces),
        ("/v1/assistants", "application/json", f"Content-Length: {MAX_REQUEST_BYTES}", _json_pieces),
        ("/v1/files", "multipart/form-data; boundary=x", "Transfer-Encoding: chunked", _multipart_pieces),
        (
            "/v1/files",
            "multipart/form-data; boundary=x",
            f"Content-Length: {MAX_FILE_BYTES}",
            _multipart_pieces,
        ),
    ],
)
@pytest.mark.parametrize("bad_key", [None, "sk-not-a-key"])
def test_bad_key_is_401_before_the_body_is_read(
    limited_stack: StackHandle, path: str, content_type: str, framing: str, pieces, bad_key: str | None
) -> None:  # type: ignore[no-untyped-def]
    # Send the first piece of the body only: a server that reads the body before checking the
    # key waits for the rest and never answers.
    head = _head("POST", path, bad_key, content_type, framing)
    start = time.monotonic()
    answer, sent = _send_until_answered(limited_stack.port, head, pieces(), stall_after=1, wait=15)
    status, error = _status_and_error(answer)
    assert status == 401, answer
    assert error["type"] == "invalid_request_error"
    assert error["code"] == (None if bad_key is None else "invalid_api_key")
    assert time.monotonic() - start < 10


def test_normal_requests_are_unaffected(limited_stack: StackHandle, key: str) -> None:
    client = openai.OpenAI(base_url=limited_stack.base_url, api_key=key, max_retries=0)
    a = client.beta.assistants.create(model="smollm2-135m-instruct", instructions="d" * 100_000)
    assert client.beta.assistants.retrieve(a.id).instructions == "d" * 100_000
    data = b"\1" * (MAX_FILE_BYTES - 1000)
    f = client.files.create(file=("ok.bin", data), purpose="assistants")
    assert client.files.content(f.id).read() == data

    # A chunked body under the limit is read and served; the connection stays usable.
    def body() -> Iterator[bytes]:
        yield b'{"model": "smollm2-135m-instruct", '
        yield b'"name": "chunked"}'

    with httpx.Client(base_url=limited_stack.api_url, headers={"Authorization": f"Bearer {key}"}) as http:
        r = http.post("/v1/assistants", content=body(), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "chunked"
        assert http.get(f"/v1/assistants/{r.json()['id']}").status_code == 200
        # Unauthenticated routes without a body are untouched.
        assert http.get("/health", headers={"Authorization": ""}).status_code == 200


def test_max_completion_tokens_below_256_is_refused(limited_stack: StackHandle, key: str) -> None:
    client = openai.OpenAI(base_url=limited_stack.base_url, api_key=key, max_retries=0)
    a = client.beta.assistants.create(model="smollm2-135m-instruct")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    for call in (
        lambda: client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=a.id, max_completion_tokens=255
        ),
        lambda: client.beta.threads.create_and_run(assistant_id=a.id, max_completion_tokens=1),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert isinstance(err.value.body, dict) and err.value.body["param"] == "max_completion_tokens"
        assert "256" in err.value.body["message"]
    assert client.beta.threads.runs.list(thread_id=thread.id).data == []  # nothing was started
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id, max_completion_tokens=256)
    assert run.max_completion_tokens == 256
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
