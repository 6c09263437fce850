"""Generic storage of API objects: one table per object kind, the object whole in `data`.

Table names come from a fixed allow-list, never from input. Every read and write is scoped to a
project: another project's id behaves exactly like an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb

from assistants.db.pool import Pool as DbPool

Table = Literal[
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "files",
    "vector_stores",
    "vector_store_files",
    "vector_store_file_batches",
    "responses",
]
_EXTRA_COLUMNS = {
    "thread_id",
    "run_id",
    "assistant_id",
    "status",
    "vector_store_id",
    "batch_id",
    "purpose",
    "file_id",
}


@dataclass
class Page:
    data: list[dict[str, Any]]
    has_more: bool

    def envelope(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }


def _cols(columns: dict[str, Any]) -> dict[str, Any]:
    bad = set(columns) - _EXTRA_COLUMNS
    if bad:
        raise ValueError(f"unknown columns {bad}")
    return columns


async def insert(
    pool: DbPool, table: Table, project_id: str, obj: dict[str, Any], **columns: Any
) -> dict[str, Any]:
    cols = {
        "id": obj["id"],
        "project_id": project_id,
        "created_at": obj["created_at"],
        "data": Jsonb(obj),
        **_cols(columns),
    }
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    async with pool.connection() as conn:
        await conn.execute(query, list(cols.values()))
    return obj


async def get(
    pool: DbPool, table: Table, project_id: str, obj_id: str, **where: Any
) -> dict[str, Any] | None:
    conds = [sql.SQL("id = %s"), sql.SQL("project_id = %s")] + [
        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in _cols(where)
    ]
    query = sql.SQL("SELECT data FROM {} WHERE {}").format(
        sql.Identifier(table), sql.SQL(" AND ").join(conds)
    )
    async with pool.connection() as conn:
        row = await (await conn.execute(query, [obj_id, project_id, *where.values()])).fetchone()
    return row["data"] if row else None


async def patch(
    pool: DbPool, table: Table, project_id: str, obj_id: str, fields: dict[str, Any], **columns: Any
) -> dict[str, Any] | None:
    """Shallow-merge `fields` into the object (and set extra columns); returns the new object."""
    sets = [sql.SQL("data = data || %s")] + [
        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in _cols(columns)
    ]
    query = sql.SQL("UPDATE {} SET {} WHERE id = %s AND project_id = %s RETURNING data").format(
        sql.Identifier(table), sql.SQL(", ").join(sets)
    )
    async with pool.connection() as conn:
        row = await (
            await conn.execute(query, [Jsonb(fields), *columns.values(), obj_id, project_id])
        ).fetchone()
    return row["data"] if row else None


async def delete(pool: DbPool, table: Table, project_id: str, obj_id: str, **where: Any) -> bool:
    conds = [sql.SQL("id = %s"), sql.SQL("project_id = %s")] + [
        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in _cols(where)
    ]
    query = sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table), sql.SQL(" AND ").join(conds))
    async with pool.connection() as conn:
        cur = await conn.execute(query, [obj_id, project_id, *where.values()])
    return cur.rowcount > 0


async def list_page(
    pool: DbPool,
    table: Table,
    project_id: str,
    *,
    limit: int = 20,
    order: str = "desc",
    after: str | None = None,
    before: str | None = None,
    metadata: dict[str, str] | None = None,
    **where: Any,
) -> Page:
    """OpenAI cursor pagination: `after`/`before` are ids of objects in the same listing.

    An unknown cursor id yields an empty page rather than an error, as OpenAI does.
    `metadata` keeps the objects whose metadata holds every given pair.
    """
    conds: list[sql.Composable] = [sql.SQL("project_id = %s")]
    params: list[Any] = [project_id]
    if metadata:
        conds.append(sql.SQL("data -> 'metadata' @> %s"))
        params.append(Jsonb(metadata))
    for k, v in _cols(where).items():
        conds.append(sql.SQL("{} = %s").format(sql.Identifier(k)))
        params.append(v)
    desc = order == "desc"
    seq_sub = sql.SQL("(SELECT seq FROM {} WHERE id = %s AND project_id = %s)").format(sql.Identifier(table))
    if after:
        conds.append(sql.SQL("seq {} ").format(sql.SQL("<" if desc else ">")) + seq_sub)
        params += [after, project_id]
    reverse = False
    if before:
        conds.append(sql.SQL("seq {} ").format(sql.SQL(">" if desc else "<")) + seq_sub)
        params += [before, project_id]
        # Walk away from the cursor, then flip back into the requested order.
        desc, reverse = not desc, True
    query = sql.SQL("SELECT data FROM {} WHERE {} ORDER BY seq {} LIMIT %s").format(
        sql.Identifier(table), sql.SQL(" AND ").join(conds), sql.SQL("DESC" if desc else "ASC")
    )
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, [*params, limit + 1])).fetchall()
    data = [r["data"] for r in rows[:limit]]
    if reverse:
        data.reverse()
    return Page(data=data, has_more=len(rows) > limit)
