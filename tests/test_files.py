"""/v1/files through the official SDK: byte-exact round trips, listing, limits, project isolation."""

from __future__ import annotations

import os
import socket

import httpx
import openai
import pytest


def test_upload_content_delete_round_trip_is_byte_exact(client: openai.OpenAI) -> None:
    data = os.urandom(300_000) + b"\x00\r\n\xff end"
    f = client.files.create(file=("blob.bin", data), purpose="user_data")
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == (
        "file",
        len(data),
        "blob.bin",
        "user_data",
        "processed",
    )
    assert f.id.startswith("file-")
    assert client.files.retrieve(f.id) == f
    assert client.files.content(f.id).read() == data
    deleted = client.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)


@pytest.mark.parametrize("purpose", ["assistants", "assistants_output", "vision", "user_data", "batch"])
def test_purposes_and_list_filter(client: openai.OpenAI, purpose: str) -> None:
    f = client.files.create(file=(f"{purpose}.txt", purpose.encode()), purpose=purpose)  # type: ignore[arg-type]
    listed = [x.id for x in client.files.list(purpose=purpose)]
    assert f.id in listed
    assert all(client.files.retrieve(i).purpose == purpose for i in listed[:5])


def test_bad_purpose_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]


def test_list_paginates(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"p{i}.txt", b"p"), purpose="user_data").id for i in range(3)]
    page = client.files.list(purpose="user_data", limit=2, order="desc")
    assert len(page.data) == 2 and page.has_more
    seen = [f.id for f in client.files.list(purpose="user_data", limit=2)]  # auto-paginates through `after`
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))


def test_too_large_is_413(stack, client: openai.OpenAI) -> None:  # type: ignore[no-untyped-def]
    # A declared length over the limit is refused before the body is read (raw socket: HTTP
    # clients refuse to send less than they declare).
    url = httpx.URL(stack.base_url)  # .../v1
    with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
        sock.sendall(
            (
                f"POST {url.path}/files HTTP/1.1\r\nHost: {url.host}\r\nAuthorization: Bearer {client.api_key}\r\n"
                f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {64 * 1024**3}\r\n\r\n--x"
            ).encode()
        )
        head = b""
        while b"too large" not in head:  # the body may arrive after the headers
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
    text = head.decode(errors="replace")
    assert text.startswith("HTTP/1.1 413"), text
    assert "too large" in text


def test_files_are_scoped_to_their_project(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    f = client.files.create(file=("secret.txt", b"project A only"), purpose="assistants")
    for call in (
        lambda: other_client.files.retrieve(f.id),
        lambda: other_client.files.content(f.id),
        lambda: other_client.files.delete(f.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in [x.id for x in other_client.files.list()]
    assert client.files.content(f.id).read() == b"project A only"
