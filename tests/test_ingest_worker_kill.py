"""Ingestion survives a SIGKILL of the worker that runs it: the retried activities finish the file
and each chunk is written once (chunk ids derive from store, file and index; a file's chunks are
replaced in one transaction)."""

from __future__ import annotations

import os
import signal
import time

import openai
import psycopg
import pytest

from tests.stackutil import StackHandle

pytestmark = pytest.mark.timeout(300)


def test_ingestion_retried_after_worker_kill_writes_each_chunk_once(
    stack: StackHandle, client: openai.OpenAI
) -> None:
    words = [f"term{i % 997} about rivers, valleys and the weather of place {i}" for i in range(2500)]
    f = client.files.create(file=("long.txt", " ".join(words).encode()), purpose="assistants")
    store = client.vector_stores.create(name="kill")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=f.id)
    time.sleep(1.0)  # ingestion under way (embedding dozens of chunks takes several seconds here)
    old = stack.pids()["worker-runs"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 240
    status = "in_progress"
    while time.monotonic() < deadline and status == "in_progress":
        time.sleep(1)
        status = client.vector_stores.files.retrieve(file_id=f.id, vector_store_id=store.id).status
    assert status == "completed", f"ingestion still {status} 240 s after the worker was killed"
    assert stack.pids()["worker-runs"] != old
    with psycopg.connect(stack.database_url) as conn:
        n, distinct, top = conn.execute(
            "SELECT count(*), count(DISTINCT chunk_index), max(chunk_index) FROM vector_store_chunks"
            " WHERE vector_store_id = %s AND file_id = %s",
            (store.id, f.id),
        ).fetchone()
    assert n > 10 and n == distinct == top + 1  # every chunk once, none missing
    hits = client.vector_stores.search(vector_store_id=store.id, query="weather of place 1234")
    assert hits.data and hits.data[0].file_id == f.id
