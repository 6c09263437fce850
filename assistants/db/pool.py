"""The async connection pool a process opens once (API lifespan, worker start) and closes at exit.

Rows come back as dicts; `Pool` is the pool's precise type, so the type checker knows it too.

The pool outlives a database restart: every connection is checked before it is handed out,
and the first failed check sweeps the idle ones, which died with the same server. Waits are
short, so while the database is away a caller fails fast (the API answers 503) instead of
hanging; reconnection keeps trying in short rounds, so the pool is back soon after the database.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]
Conn: TypeAlias = AsyncConnection[DictRow]

# How long a caller waits for a connection before PoolTimeout (the API maps it to 503).
GETCONN_TIMEOUT = 5.0
# psycopg_pool doubles its reconnect delay without a cap until this much time has passed, then
# gives up until the next request asks: short rounds keep the delay at a few seconds.
RECONNECT_TIMEOUT = 5.0


def make_pool(database_url: str, min_size: int = 1, max_size: int = 10) -> Pool:
    """A closed pool; open it with `await pool.open()` in the loop that will use it."""
    sweeps: set[asyncio.Task[None]] = set()

    async def check(conn: Conn) -> None:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            # The idle connections died with the same server: without a sweep, each one would
            # cost the caller another (doubling) backoff sleep before it got a live connection.
            if not sweeps:
                sweep = asyncio.create_task(pool.check())
                sweeps.add(sweep)
                sweep.add_done_callback(sweeps.discard)
            raise

    pool: Pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        connection_class=AsyncConnection[DictRow],
        kwargs={"row_factory": dict_row, "autocommit": True},
        check=check,
        timeout=GETCONN_TIMEOUT,
        reconnect_timeout=RECONNECT_TIMEOUT,
    )
    return pool


async def open_pool(database_url: str, min_size: int = 1, max_size: int = 10) -> Pool:
    pool = make_pool(database_url, min_size, max_size)
    await pool.open(wait=True, timeout=30)
    return pool
