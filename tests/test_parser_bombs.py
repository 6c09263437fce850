"""Parsers that cannot be bombed (issue 12 item 3).

End to end (own stack, short limits, the official SDK's `upload_and_poll`): a zip-bomb .docx, a
PDF that keeps the text extractor busy for minutes, and a text past the character cap each end
`failed` with a clear `last_error` within seconds, the runs worker's memory does not grow, and
ordinary files still ingest afterwards. Alone (no stack): the parser process's CPU and memory
limits stop what the pre-checks let through.
"""

from __future__ import annotations

import asyncio
import io
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from activities.parsing import InvalidFile, ParseLimits
from activities.parsing.isolated import parse_file
from tests.file_samples import make_docx, make_pdf
from tests.stackutil import StackHandle, own_stack

pytestmark = pytest.mark.timeout(900)

TIMEOUT_S = 5
MAX_CHARS = 200_000
GIB = 1024**3


def _zip(members: list[tuple[str, int, int, bytes, int]]) -> bytes:
    """A minimal zip from (name, method, crc, payload, uncompressed size); sizes < 4 GiB."""
    out, central = io.BytesIO(), []
    for name, method, crc, payload, usize in members:
        off, n = out.tell(), name.encode()
        head = (20, 0, method, 0, 0x21, crc, len(payload), usize, len(n))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *head, 0) + n + payload)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *head, 0, 0, 0, 0, 0, off) + n)
    cd = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - cd, cd, 0))
    return out.getvalue()


def zip_bomb_docx(gib: int = 2) -> bytes:
    """A valid .docx (~3 MB) whose word/document.xml inflates to `gib` GiB. Built from one
    full-flushed deflate block repeated, so making it costs no more than a CRC pass."""
    base = zipfile.ZipFile(io.BytesIO(make_docx(["hello"])))
    members = []
    for info in base.infolist():
        if info.filename != "word/document.xml":
            data = base.read(info.filename)
            members.append((info.filename, 0, zlib.crc32(data), data, len(data)))
    block = b" " * (64 * 1024**2)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    n, crc = gib * 16, 0
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    members.append(("word/document.xml", 8, crc, unit * n + comp.flush(), n * len(block)))
    return _zip(members)


def cpu_burner_pdf(ops: int = 1_000_000) -> bytes:
    """~100 KB: one page whose flate-compressed content stream repeats a text operator `ops`
    times; pypdf's extract_text spends minutes on it."""
    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (x) Tj ET\n" * ops, 9)
    pdf = make_pdf("placeholder")
    start = pdf.index(b"4 0 obj\n")
    end = pdf.index(b"endobj\n", start) + len(b"endobj\n")
    obj = b"4 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream\nendobj\n" % (
        len(stream),
        stream,
    )
    body = pdf[:start] + obj + pdf[end : pdf.index(b"xref\n")]
    # Rebuild the xref for the new offsets.
    offsets = [body.index(b"%d 0 obj\n" % i) for i in range(1, 6)]
    xref = len(body)
    tail = b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    tail += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return body + tail


# --- the parser process alone -----------------------------------------------------------------


def _isolated(name: str, data: bytes, limits: ParseLimits) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "file"
        src.write_bytes(data)
        return asyncio.run(parse_file(name, src, limits))


def test_zip_bomb_is_refused_before_decompressing() -> None:
    t = time.monotonic()
    with pytest.raises(InvalidFile, match="decompress to .* bytes"):
        _isolated("bomb.docx", zip_bomb_docx(), ParseLimits())
    assert time.monotonic() - t < 10


def test_memory_limit_stops_what_the_zip_check_lets_through() -> None:
    limits = ParseLimits(memory_bytes=768 * 1024**2, max_unzipped_bytes=4 * GIB, max_zip_ratio=10**6)
    with pytest.raises(InvalidFile):
        _isolated("bomb.docx", zip_bomb_docx(), limits)


def test_cpu_limit_and_timeout_stop_a_busy_parser() -> None:
    pdf = cpu_burner_pdf()
    t = time.monotonic()
    with pytest.raises(InvalidFile, match="CPU seconds"):
        _isolated("busy.pdf", pdf, ParseLimits(cpu_seconds=2, timeout_seconds=60))
    with pytest.raises(InvalidFile, match="longer than 2 seconds"):
        _isolated("busy.pdf", pdf, ParseLimits(cpu_seconds=600, timeout_seconds=2))
    assert time.monotonic() - t < 30


def test_normal_files_parse_in_the_process() -> None:
    assert _isolated("a.docx", make_docx(["alpha", "beta"]), ParseLimits()) == "alpha\nbeta"
    assert _isolated("a.pdf", make_pdf("gamma"), ParseLimits()) == "gamma"


# --- through the real stack -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    with own_stack(
        "assistants-bombs-",
        env={
            "ASSISTANTS_PARSE_TIMEOUT_SECONDS": str(TIMEOUT_S),
            "ASSISTANTS_PARSE_MAX_CHARS": str(MAX_CHARS),
        },
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=120)


def _peak_rss(stack: StackHandle) -> int:
    """The runs worker's high-water resident memory (freed memory still counts)."""
    status = Path(f"/proc/{stack.pids()['worker-runs']}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:"))) * 1024


def _ingest(client: openai.OpenAI, store_id: str, name: str, data: bytes):  # type: ignore[no-untyped-def]
    t = time.monotonic()
    vf = client.vector_stores.files.upload_and_poll(
        vector_store_id=store_id, file=(name, data), poll_interval_ms=300
    )
    return vf, time.monotonic() - t


def test_bombs_fail_fast_and_the_worker_keeps_serving(client: openai.OpenAI, stack: StackHandle) -> None:
    store = client.vector_stores.create(name="bombs")
    # Warm the worker (embedding model loaded) so its memory is measured at rest.
    warm, _ = _ingest(client, store.id, "warm.txt", b"Warm-up text about herons.")
    assert warm.status == "completed", warm.last_error
    before = _peak_rss(stack)

    bomb, took = _ingest(client, store.id, "bomb.docx", zip_bomb_docx(2))
    assert bomb.status == "failed" and bomb.last_error is not None
    assert bomb.last_error.code == "invalid_file" and "zip bomb" in bomb.last_error.message
    assert took < 30, took

    busy, took = _ingest(client, store.id, "busy.pdf", cpu_burner_pdf())
    assert busy.status == "failed" and busy.last_error is not None
    assert busy.last_error.code == "invalid_file"
    assert f"longer than {TIMEOUT_S} seconds" in busy.last_error.message
    assert took < TIMEOUT_S + 25, took

    huge, took = _ingest(client, store.id, "huge.txt", b"lorem ipsum dolor sit amet\n" * 40_000)
    assert huge.status == "failed" and huge.last_error is not None
    assert f"more than {MAX_CHARS} characters" in huge.last_error.message
    assert took < 30, took

    grown = _peak_rss(stack) - before
    assert grown < 256 * 1024**2, f"runs worker peaked {grown // 1024**2} MiB higher"
    # Still serving: ordinary documents ingest and are found.
    for name, data in (
        ("ok.docx", make_docx(["Flamingos are pink from their diet of Zyxelbrine shrimp."])),
        ("ok.pdf", make_pdf("Cormorants dive for Quendralite fish.")),
    ):
        vf, _ = _ingest(client, store.id, name, data)
        assert vf.status == "completed", (name, vf.last_error)
    hits = list(client.vector_stores.search(store.id, query="Zyxelbrine"))
    assert hits and hits[0].filename == "ok.docx"
    s = client.vector_stores.retrieve(store.id)
    assert (s.file_counts.failed, s.file_counts.completed, s.file_counts.in_progress) == (3, 3, 0)
