"""The async connection pool a process opens once (API lifespan, worker start) and closes at exit.

Rows come back as dicts; `Pool` is the pool's precise type, so the type checker knows it too.
"""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]
Conn: TypeAlias = AsyncConnection[DictRow]


def make_pool(database_url: str, min_size: int = 1, max_size: int = 10) -> Pool:
    """A closed pool; open it with `await pool.open()` in the loop that will use it."""
    return AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        connection_class=AsyncConnection[DictRow],
        kwargs={"row_factory": dict_row, "autocommit": True},
    )


async def open_pool(database_url: str, min_size: int = 1, max_size: int = 10) -> Pool:
    pool = make_pool(database_url, min_size, max_size)
    await pool.open(wait=True, timeout=30)
    return pool
