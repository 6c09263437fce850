"""Hybrid search SQL: pgvector HNSW (cosine) and Postgres full-text search, fused.

Fusion is reciprocal rank fusion (k=60) over the top candidates of each list. RRF alone is rank
based, so a nonsense query would still score its best hit 1.0; the reported score therefore
blends the normalised RRF (rrf / rrf_max, in [0,1]) with the chunk's absolute cosine similarity
(clamped at 0): score = (rrf/rrf_max + max(cos, 0)) / 2. It stays in [0,1], ranks like RRF, and
a `score_threshold` cuts results that neither matched the query's words nor its meaning.

Chunks reference their vector_store.file (ON DELETE CASCADE, migration 0006), and the final select
joins the live file rows besides, so a deleted file is never a search result.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

RRF_K = 60
RRF_MAX = 2.0 / (RRF_K + 1)
_OPS = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class BadFilter(ValueError):
    pass


def filter_sql(f: dict[str, Any], params: dict[str, Any]) -> sql.Composable:
    """OpenAI attribute filters (comparison / compound) over vector_store_files.data.attributes.
    Values go into `params` under generated names; nothing from the filter is spliced into SQL."""
    kind = f.get("type") if isinstance(f, dict) else None
    if kind in ("and", "or"):
        subs = f.get("filters")
        if not isinstance(subs, list) or not subs:
            raise BadFilter("compound filters need a non-empty 'filters' list")
        parts = [filter_sql(s, params) for s in subs]
        return sql.SQL("(") + sql.SQL(f" {kind.upper()} ").join(parts) + sql.SQL(")")

    def bind(value: Any) -> sql.Composable:
        name = f"f{len(params)}"
        params[name] = value
        return sql.Placeholder(name)

    key, value = f.get("key"), f.get("value")
    if not isinstance(key, str):
        raise BadFilter("comparison filters need a string 'key'")
    attr = sql.SQL("(f.data->'attributes'->{})").format(bind(key))
    if kind in ("in", "nin"):
        if not isinstance(value, list):
            raise BadFilter(f"'{kind}' needs a list value")
        cond = sql.SQL("coalesce({} IN (SELECT jsonb_array_elements({}::jsonb)), false)").format(
            attr, bind(Jsonb(value))
        )
        return cond if kind == "in" else sql.SQL("NOT ") + cond
    if kind not in _OPS or isinstance(value, (list, dict)) or value is None:
        raise BadFilter(f"unsupported filter {kind!r} with value {value!r}")
    if kind in ("eq", "ne"):
        return sql.SQL("{} {} {}::jsonb").format(attr, sql.SQL(_OPS[kind]), bind(Jsonb(value)))
    # Ordering only between values of one JSON type (numbers numerically, strings lexically).
    v = bind(Jsonb(value))
    return sql.SQL("(jsonb_typeof({a}) = jsonb_typeof({v}::jsonb) AND {a} {op} {v}::jsonb)").format(
        a=attr, v=v, op=sql.SQL(_OPS[kind])
    )


def search_query(filters: dict[str, Any] | None) -> tuple[sql.Composed, dict[str, Any]]:
    """The fused search, and the filter's params; the caller adds emb, text, project, stores, k,
    threshold and limit."""
    fparams: dict[str, Any] = {}
    fcond = (sql.SQL(" AND ") + filter_sql(filters, fparams)) if filters else sql.SQL("")
    join = sql.SQL(
        " JOIN vector_store_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id"
    )
    query = sql.SQL("""
WITH q AS (
  -- Any query word may match (OR), not all of them: questions rarely repeat a passage verbatim.
  SELECT %(emb)s::vector AS emb,
         CASE WHEN numnode(p) = 0 THEN p ELSE to_tsquery('simple', replace(p::text, ' & ', ' | ')) END AS tsq
  FROM plainto_tsquery('english', %(text)s) AS p
),
vec AS (
  SELECT id, row_number() OVER (ORDER BY dist) AS r FROM (
    -- The vector is a parameter here, not q.emb: only an ORDER BY against a constant uses HNSW.
    SELECT c.id, c.embedding <=> %(emb)s::vector AS dist FROM vector_store_chunks c {join}
    WHERE c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {fcond1}
    ORDER BY c.embedding <=> %(emb)s::vector LIMIT %(k)s) v
),
fts AS (
  SELECT id, row_number() OVER (ORDER BY rank DESC) AS r FROM (
    SELECT c.id, ts_rank_cd(c.tsv, q.tsq) AS rank FROM vector_store_chunks c {join}, q
    WHERE c.tsv @@ q.tsq AND c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {fcond2}
    ORDER BY rank DESC LIMIT %(k)s) t
),
fused AS (
  SELECT c.id, c.file_id, c.vector_store_id, c.content, c.chunk_index,
         (coalesce(1.0 / ({rrf_k} + vec.r), 0) + coalesce(1.0 / ({rrf_k} + fts.r), 0)) / {rrf_max} AS rrf,
         greatest(1 - (c.embedding <=> q.emb), 0) AS sim
  FROM (SELECT id FROM vec UNION SELECT id FROM fts) ids
  JOIN vector_store_chunks c USING (id) CROSS JOIN q
  LEFT JOIN vec USING (id) LEFT JOIN fts USING (id)
)
SELECT fused.*, ((rrf + sim) / 2)::float8 AS score, fi.data->>'filename' AS filename,
       coalesce(f.data->'attributes', '{{}}'::jsonb) AS attributes
FROM fused
-- Inner joins: only chunks whose file and vector_store.file are live rows are ever returned.
JOIN files fi ON fi.id = fused.file_id
JOIN vector_store_files f ON f.vector_store_id = fused.vector_store_id AND f.file_id = fused.file_id
WHERE (rrf + sim) / 2 >= %(threshold)s
ORDER BY score DESC, fused.id
LIMIT %(limit)s
""").format(
        join=join if filters else sql.SQL(""),
        fcond1=fcond,
        fcond2=fcond,
        rrf_k=sql.Literal(RRF_K),
        rrf_max=sql.Literal(RRF_MAX),
    )
    return query, fparams
