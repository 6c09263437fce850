"""The generate activity's prompt loader against the real Postgres: the thread is read
newest-first and only as far as the context could hold, whatever the thread's length."""

from __future__ import annotations

import asyncio

import openai

from activities.prompt import thread_history
from assistants.db.pool import open_pool
from tests.stackutil import StackHandle


def _load(stack: StackHandle, thread_id: str, budget: int, last: int | None = None) -> list[str]:
    async def go() -> list[str]:
        pool = await open_pool(stack.database_url, max_size=2)
        try:
            return [m.content for m in await thread_history(pool, thread_id, "run_none", budget, last)]
        finally:
            await pool.close()

    return asyncio.run(go())


def test_thread_read_newest_first_within_budget(client: openai.OpenAI, stack: StackHandle) -> None:
    thread = client.beta.threads.create()
    texts = [f"message {n:03d} " + "x" * 88 for n in range(150)]  # 100 characters each
    for t in texts:
        client.beta.threads.messages.create(thread.id, role="user", content=t)
    # Everything fits: all of it, oldest first (read in growing batches across 150 rows).
    assert _load(stack, thread.id, 1_000_000) == texts
    # 1000 characters hold the newest 10 messages, in order.
    assert _load(stack, thread.id, 1000) == texts[-10:]
    # truncation_strategy last_messages caps the count too.
    assert _load(stack, thread.id, 1_000_000, last=3) == texts[-3:]
    # The newest message is kept even when alone it exceeds the budget (clipped: it cannot fit,
    # and the token-exact check after rendering reports the prompt too long).
    client.beta.threads.messages.create(thread.id, role="user", content="y" * 5000)
    assert _load(stack, thread.id, 1000) == ["y" * 1001]
