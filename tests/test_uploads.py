"""Issue 14 item 4: the Uploads API (/v1/uploads, parts, complete, cancel) through the official SDK.

A file larger than the API's general request limit (`max_request_bytes`) is sent in parts by the
SDK's own `uploads.upload_file_chunked` and read back byte-exact from /v1/files/{id}/content; the
parts route alone takes bodies up to a part's limit (64 MiB); errors are OpenAI envelopes; parts
count in the project's stored-bytes quota; and the API process's peak RSS, measured around a
64 MiB part, shows the part is never held whole.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psycopg
import pytest

from assistants.settings import Settings
from tests.stackutil import StackHandle, own_stack

pytestmark = pytest.mark.timeout(600)
MiB = 1024 * 1024
PART_MAX = Settings().upload_part_max_bytes  # the default the shared stack runs with (64 MiB)
REQUEST_MAX = Settings().max_request_bytes  # the general request body limit (2 MiB)


def _status(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[int, dict[str, object]]:
    body = exc.value.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return exc.value.status_code, body["error"]


def test_chunked_upload_larger_than_the_request_limit_reads_back_byte_exact(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    data = os.urandom(3 * REQUEST_MAX + 12_345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    part_size = REQUEST_MAX + REQUEST_MAX // 4  # each part is itself over the general limit
    upload = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=part_size,
        md5=hashlib.md5(data).hexdigest(),
    )
    assert upload.object == "upload" and upload.status == "completed"
    assert upload.bytes == len(data) and upload.filename == "big.bin" and upload.purpose == "assistants"
    assert upload.expires_at - upload.created_at == 3600
    assert upload.file is not None and upload.file.object == "file"
    assert upload.file.bytes == len(data) and upload.file.purpose == "assistants"
    assert client.files.retrieve(upload.file.id).bytes == len(data)
    assert client.files.content(upload.file.id).read() == data
    client.files.delete(upload.file.id)


def test_only_the_parts_route_takes_large_bodies(client: openai.OpenAI) -> None:
    """A body over the general limit is refused on the wire on create/complete (as before this
    change, when every /v1/uploads route took the 512 MiB file limit)."""
    up = client.uploads.create(bytes=1, filename="a", mime_type="text/plain", purpose="assistants")
    big = b"{" + b" " * (REQUEST_MAX + 10) + b"}"
    headers = {"authorization": f"Bearer {client.api_key}", "content-type": "application/json"}
    for path in ("uploads", f"uploads/{up.id}/complete"):
        r = httpx.post(f"{client.base_url}{path}", content=big, headers=headers, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", path
    client.uploads.cancel(up.id)


def test_upload_lifecycle_errors(client: openai.OpenAI, other_client: openai.OpenAI) -> None:
    up = client.uploads.create(bytes=10, filename="a.txt", mime_type="text/plain", purpose="assistants")
    assert up.status == "pending" and up.file is None
    part = client.uploads.parts.create(up.id, data=b"hello")
    assert part.object == "upload.part" and part.upload_id == up.id
    # Wrong ids: another project's upload is not found, as an unknown one.
    for c, uid in ((client, "upload_nope"), (other_client, up.id)):
        with pytest.raises(openai.NotFoundError) as nf:
            c.uploads.parts.create(uid, data=b"x")
        assert _status(nf)[0] == 404
    with pytest.raises(openai.BadRequestError) as bad:
        client.uploads.complete(up.id, part_ids=["part_unknown"])
    assert _status(bad)[1]["param"] == "part_ids"
    # Complete with a wrong byte count: 5 bytes held, 10 declared.
    with pytest.raises(openai.BadRequestError) as bad:
        client.uploads.complete(up.id, part_ids=[part.id])
    assert _status(bad)[1]["param"] == "bytes"
    # A part past the declared total is refused (and not stored).
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(up.id, data=b"0123456789")
    second = client.uploads.parts.create(up.id, data=b"world")
    with pytest.raises(openai.BadRequestError) as bad:
        client.uploads.complete(up.id, part_ids=[part.id, second.id], md5="0" * 32)
    assert _status(bad)[1]["param"] == "md5"
    # Parts in the order given, not the order sent.
    done = client.uploads.complete(up.id, part_ids=[second.id, part.id])
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == b"worldhello"
    with pytest.raises(openai.BadRequestError):
        client.uploads.cancel(up.id)
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(up.id, data=b"x")

    cancelled = client.uploads.create(bytes=3, filename="c.txt", mime_type="text/plain", purpose="assistants")
    p = client.uploads.parts.create(cancelled.id, data=b"abc")
    assert client.uploads.cancel(cancelled.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as bad:
        client.uploads.complete(cancelled.id, part_ids=[p.id])
    code, err = _status(bad)
    assert code == 400 and "cancelled" in str(err["message"])
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(cancelled.id, data=b"x")

    with pytest.raises(openai.BadRequestError) as bad:
        client.uploads.create(
            bytes=8 * 1024**3 + 1, filename="h", mime_type="text/plain", purpose="assistants"
        )
    assert _status(bad)[1]["param"] == "bytes"
    with pytest.raises(openai.BadRequestError):
        client.uploads.create(bytes=1, filename="h", mime_type="text/plain", purpose="nonsense")  # type: ignore[arg-type]


def _peak_rss(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def test_a_part_of_the_maximum_size_is_streamed_not_held(client: openai.OpenAI, stack: StackHandle) -> None:
    """The API process's peak RSS (VmHWM, reset through clear_refs) grows by far less than the
    64 MiB part it stores: the multipart parser spools past 1 MiB and storage copies 1 MiB chunks."""
    pid = stack.pids()["api"]
    data = os.urandom(PART_MAX)
    up = client.uploads.create(
        bytes=PART_MAX, filename="p.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    client.uploads.parts.create(up.id, data=b"warm")  # first-use allocations out of the way
    client.uploads.cancel(up.id)
    up = client.uploads.create(
        bytes=PART_MAX, filename="p.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current RSS
    before, _ = _peak_rss(pid)
    part = client.uploads.parts.create(up.id, data=data)
    _, peak = _peak_rss(pid)
    growth = peak - before
    print(f"API peak RSS growth while storing a {PART_MAX // MiB} MiB part: {growth / MiB:.1f} MiB")  # noqa: T201
    assert growth < PART_MAX // 4, f"peak RSS grew {growth / MiB:.1f} MiB for a {PART_MAX // MiB} MiB part"
    done = client.uploads.complete(up.id, part_ids=[part.id])
    assert done.file is not None and client.files.retrieve(done.file.id).bytes == PART_MAX
    client.files.delete(done.file.id)


def test_part_over_the_limit_is_413(client: openai.OpenAI) -> None:
    up = client.uploads.create(
        bytes=3 * PART_MAX, filename="p.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    # Just over a part's limit: within the route's body allowance, refused by the route.
    with pytest.raises(openai.APIStatusError) as exc:
        client.uploads.parts.create(up.id, data=b"\0" * (PART_MAX + 1))
    code, err = _status(exc)
    assert code == 413 and err["code"] == "part_too_large" and err["param"] == "data"
    # Well over it: refused on the wire by the body limit.
    with pytest.raises(openai.APIStatusError) as exc:
        client.uploads.parts.create(up.id, data=b"\0" * (PART_MAX + 2 * MiB))
    code, err = _status(exc)
    assert code == 413 and err["code"] == "request_too_large"
    client.uploads.cancel(up.id)


def test_uploaded_file_goes_into_a_vector_store(client: openai.OpenAI, tmp_path: Path) -> None:
    text = "The Zorblat valve of the Quimby engine is painted teal.\n" * 200
    path = tmp_path / "manual.txt"
    path.write_text(text)
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="text/plain", purpose="assistants", part_size=4096
    )
    assert upload.file is not None
    store = client.vector_stores.create(name="uploads", file_ids=[upload.file.id])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        vsf = client.vector_stores.files.retrieve(upload.file.id, vector_store_id=store.id)
        if vsf.status != "in_progress":
            break
        time.sleep(1)
    assert vsf.status == "completed", vsf.last_error
    hits = client.vector_stores.search(store.id, query="Zorblat valve colour")
    assert hits.data and "teal" in hits.data[0].content[0].text


# --- quota: a stack of its own with a small stored-bytes quota and small parts ------------------

QUOTA = 3 * MiB


@pytest.fixture(scope="module")
def small_stack() -> Iterator[StackHandle]:
    env = {
        "ASSISTANTS_PROJECT_MAX_STORED_BYTES": str(QUOTA),
        "ASSISTANTS_UPLOAD_PART_MAX_BYTES": str(MiB),
        "ASSISTANTS_PROJECT_REQUESTS_PER_MINUTE": "0",
    }
    with own_stack("assistants-uploads-", env=env) as handle:
        yield handle


def test_parts_count_in_the_stored_bytes_quota(small_stack: StackHandle) -> None:
    client = openai.OpenAI(base_url=small_stack.base_url, api_key=small_stack.create_key(), max_retries=0)
    with pytest.raises(openai.RateLimitError):  # more than the quota cannot even be announced
        client.uploads.create(bytes=QUOTA + 1, filename="q", mime_type="text/plain", purpose="assistants")
    up = client.uploads.create(bytes=2 * MiB, filename="q", mime_type="text/plain", purpose="assistants")
    parts = [client.uploads.parts.create(up.id, data=b"a" * MiB) for _ in range(2)]
    with pytest.raises(openai.RateLimitError) as exc:  # 2 MiB of parts + 1.5 MiB of file > 3 MiB
        client.files.create(file=("f.txt", b"b" * (MiB + MiB // 2)), purpose="assistants")
    assert exc.value.response.json()["error"]["code"] == "insufficient_quota"
    done = client.uploads.complete(up.id, part_ids=[p.id for p in parts])  # parts become the File
    assert done.file is not None and done.file.bytes == 2 * MiB
    with pytest.raises(openai.RateLimitError):
        client.files.create(file=("f.txt", b"b" * (MiB + MiB // 2)), purpose="assistants")
    client.files.create(file=("f.txt", b"b" * (MiB // 2)), purpose="assistants")  # what is left fits
    # A cancelled upload frees what its parts held.
    client.files.delete(done.file.id)
    up = client.uploads.create(bytes=2 * MiB, filename="q", mime_type="text/plain", purpose="assistants")
    client.uploads.parts.create(up.id, data=b"a" * MiB)
    client.uploads.parts.create(up.id, data=b"a" * MiB)
    with pytest.raises(openai.RateLimitError):
        client.files.create(file=("g.txt", b"c" * MiB), purpose="assistants")
    client.uploads.cancel(up.id)
    client.files.create(file=("g.txt", b"c" * MiB), purpose="assistants")
    # The small part limit of this stack: 1 MiB + 1 is refused by the route.
    up = client.uploads.create(bytes=MiB + 1, filename="q", mime_type="text/plain", purpose="assistants")
    with pytest.raises(openai.APIStatusError) as big:
        client.uploads.parts.create(up.id, data=b"z" * (MiB + 1))
    assert big.value.status_code == 413


def test_an_expired_upload_takes_nothing_and_its_parts_are_removed(
    client: openai.OpenAI, stack: StackHandle
) -> None:
    """Expiry is checked against `expires_at` when the upload is next touched; the row's deadline
    is moved into the past here rather than waiting an hour."""
    up = client.uploads.create(bytes=6, filename="e.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(up.id, data=b"abc")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        project = conn.execute("SELECT project_id FROM uploads WHERE id = %s", (up.id,)).fetchone()[0]  # type: ignore[index]
        stored = stack.data_dir / "files" / project / part.id
        assert stored.exists()
        conn.execute("UPDATE uploads SET expires_at = expires_at - 7200 WHERE id = %s", (up.id,))
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(up.id, data=b"def")
    assert "expired" in str(_status(exc)[1]["message"])
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(up.id, part_ids=[part.id])
    assert not stored.exists()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT status, data->>'status' FROM uploads WHERE id = %s", (up.id,)).fetchone()
        assert row == ("expired", "expired")
        assert conn.execute(
            "SELECT count(*) FROM upload_parts WHERE upload_id = %s", (up.id,)
        ).fetchone() == (0,)
