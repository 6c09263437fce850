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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from assistants.db.pool import Conn
    from assistants.settings import Settings

RRF_K = 60
RRF_MAX = 2.0 / (RRF_K + 1)
_OPS = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class BadFilter(ValueError):
    pass


def parse_ef_schedule(text: str) -> tuple[tuple[int, int], ...]:
    """`"0:40,50000:100"` -> ((0, 40), (50000, 100)): from N indexed chunks on, hnsw.ef_search E."""
    steps = []
    for part in text.split(","):
        rows, _, ef = part.strip().partition(":")
        if not rows.strip().isdigit() or not ef.strip().isdigit() or not 1 <= int(ef) <= 1000:
            raise ValueError(f"bad ef_search step {part!r}: want CHUNKS:EF with 1 <= EF <= 1000")
        steps.append((int(rows), int(ef)))
    if not steps or sorted(steps) != steps or steps[0][0] != 0:
        raise ValueError("the ef_search schedule must start at 0 chunks and ascend")
    return tuple(steps)


@dataclass(frozen=True)
class SearchTuning:
    """How the vector leg scans the HNSW graph, set per query (SET LOCAL) by `tune_search`.

    Recall of a graph search falls as the graph grows at a fixed ef_search, so ef_search follows
    the index's size (the chunks of every store share one graph). Iterative scans (pgvector >= 0.8)
    keep walking the graph past rows that the store or attribute filters drop, up to
    max_scan_tuples visited rows, so a filtered query still gets its k nearest chunks."""

    # Measured on real text (bench/bench_retrieval_real.py, bench/RESULTS.md): the smallest ef with
    # recall@10 >= 0.98 of exact was 200 at 10k chunks and 400 at 25k; 800 from 100k is extrapolated.
    ef_schedule: tuple[tuple[int, int], ...] = ((0, 100), (5_000, 200), (20_000, 400), (100_000, 800))
    iterative_scan: Literal["off", "relaxed_order", "strict_order"] = "relaxed_order"
    max_scan_tuples: int = 20_000
    # Query words in more than this fraction of all chunks are left out of the full-text leg.
    common_term_frequency: float = 0.05

    @classmethod
    def from_settings(cls, s: Settings) -> SearchTuning:
        return cls(
            ef_schedule=parse_ef_schedule(s.file_search_ef_search),
            iterative_scan=s.file_search_iterative_scan,
            max_scan_tuples=s.file_search_max_scan_tuples,
            common_term_frequency=s.file_search_common_term_frequency,
        )


async def tune_search(conn: Conn, tuning: SearchTuning) -> int:
    """Set the HNSW scan settings for the current transaction; returns the ef_search chosen.
    One round trip: the index's size is the planner's estimate (pg_class.reltuples), no count."""
    row = await (
        await conn.execute(
            """
SELECT set_config('hnsw.ef_search', ef::text, true) AS ef,
       set_config('hnsw.iterative_scan', %(iter)s, true),
       set_config('hnsw.max_scan_tuples', %(max_tuples)s, true)
FROM (SELECT coalesce((SELECT s.ef FROM unnest(%(rows)s::bigint[], %(efs)s::int[]) AS s(rows, ef)
                       WHERE s.rows <= greatest(c.reltuples, 0) ORDER BY s.rows DESC LIMIT 1), %(ef0)s) AS ef
      FROM pg_class c WHERE c.oid = 'vector_store_chunks'::regclass) t
""",
            {
                "iter": tuning.iterative_scan,
                "max_tuples": str(tuning.max_scan_tuples),
                "rows": [r for r, _ in tuning.ef_schedule],
                "efs": [e for _, e in tuning.ef_schedule],
                "ef0": tuning.ef_schedule[0][1],
            },
        )
    ).fetchone()
    return int(row["ef"]) if row else tuning.ef_schedule[0][1]


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


def matching_files_query(filters: dict[str, Any]) -> tuple[sql.Composed, dict[str, Any]]:
    """The file ids of the stores' vector_store.files that pass `filters`; the caller adds project
    and stores. The search then takes them as a constant list (`files`), for the planner's sake:
    it has no statistics on attributes and would guess any filter keeps 0.5% of the chunks (and
    sort them exactly), while against a list of file ids it sees how many chunks pass, and walks
    the HNSW graph (iteratively) unless few do."""
    params: dict[str, Any] = {}
    cond = filter_sql(filters, params)
    query = sql.SQL(
        "SELECT DISTINCT f.file_id FROM vector_store_files f"
        " WHERE f.project_id = %(project)s AND f.vector_store_id = ANY(%(stores)s) AND {}"
    ).format(cond)
    return query, params


_Q = """common AS (
  -- Lexemes in more than the `common` fraction of all chunks, from the table's own statistics (ANALYZE keeps
  -- the most common elements of `tsv` and their frequencies). They match so many chunks that
  -- ranking them all costs more than anything else in a search, and they tell little apart.
  SELECT m.lexeme, m.freq
  FROM pg_stats s
  JOIN pg_namespace n ON n.nspname = s.schemaname
  JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = s.tablename,
  unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS m(lexeme, freq)
  WHERE t.oid = 'vector_store_chunks'::regclass AND s.attname = 'tsv' AND m.freq > %(common)s
),
q AS (
  -- Any query word may match (OR), not all of them: questions rarely repeat a passage verbatim.
  -- Common words are dropped, unless all are common: then the least common one stays.
  SELECT %(emb)s::vector AS emb,
         CASE WHEN numnode(p) = 0 THEN p ELSE (
           SELECT to_tsquery('simple', string_agg(term, ' | ')) FROM (
             SELECT w.term, coalesce(c.freq, 0) AS freq, min(coalesce(c.freq, 0)) OVER () AS least
             FROM unnest(string_to_array(p::text, ' & ')) AS w(term)
             LEFT JOIN common c ON quote_literal(c.lexeme) = w.term) terms
           WHERE freq = 0 OR freq = least)
         END AS tsq
  FROM plainto_tsquery('english', %(text)s) AS p
)"""
_VEC = """nearest AS MATERIALIZED (
  -- The vector is a parameter here, not q.emb: only an ORDER BY against a constant uses HNSW.
  SELECT c.id, c.embedding <=> %(emb)s::vector AS dist FROM vector_store_chunks c
  WHERE c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {files}
  ORDER BY c.embedding <=> %(emb)s::vector LIMIT %(k)s
),
vec AS (
  -- Ranked after a sort of their own: an iterative scan (relaxed_order) returns the chunks it
  -- finds as it walks on in the order found, and a closer one may come after a farther one.
  -- MATERIALIZED above keeps the planner from trusting the index's order and skipping the sort.
  SELECT id, row_number() OVER (ORDER BY dist) AS r FROM nearest
)"""
_FTS = """fts AS (
  SELECT id, row_number() OVER (ORDER BY rank DESC) AS r FROM (
    SELECT c.id, ts_rank_cd(c.tsv, q.tsq) AS rank FROM vector_store_chunks c, q
    WHERE c.tsv @@ q.tsq AND c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {files}
    ORDER BY rank DESC LIMIT %(k)s) t
)"""
_FUSED = """fused AS MATERIALIZED (
  -- MATERIALIZED: the joins below then start from these few hundred candidates. Inlined, the
  -- planner could start from the files that pass a filter and read every chunk of theirs.
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
-- The filter once more: a file id may pass in one of the stores and not in another.
WHERE (rrf + sim) / 2 >= %(threshold)s {fcond}
ORDER BY score DESC, fused.id
LIMIT %(limit)s"""
# One leg alone, for benchmarks (bench/bench_retrieval_real.py): its chunks in its own order.
_LEG = (
    "SELECT c.id, c.content FROM {leg} JOIN vector_store_chunks c USING (id) ORDER BY {leg}.r LIMIT %(limit)s"
)


def search_query(
    filters: dict[str, Any] | None, leg: Literal["hybrid", "vector", "text"] = "hybrid"
) -> tuple[sql.Composed, dict[str, Any]]:
    """The fused search (or one of its legs alone), and the filter's params; the caller adds emb,
    text, common, project, stores, k, threshold and limit, and with filters `files`
    (matching_files_query).

    Both legs take the filter as the list of passing file ids; the final select checks it again."""
    fparams: dict[str, Any] = {}
    fcond = (sql.SQL(" AND ") + filter_sql(filters, fparams)) if filters else sql.SQL("")
    files = sql.SQL(" AND c.file_id = ANY(%(files)s)") if filters else sql.SQL("")
    ctes = {"vector": [_Q, _VEC], "text": [_Q, _FTS], "hybrid": [_Q, _VEC, _FTS, _FUSED]}[leg]
    body = "WITH " + ",\n".join(ctes) + "\n" + ({"vector": _LEG, "text": _LEG}.get(leg, ""))
    query = sql.SQL(body).format(
        files=files,
        fcond=fcond,
        leg=sql.Identifier({"vector": "vec", "text": "fts"}.get(leg, "vec")),
        rrf_k=sql.Literal(RRF_K),
        rrf_max=sql.Literal(RRF_MAX),
    )
    return query, fparams
