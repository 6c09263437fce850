"""Hybrid search SQL: pgvector HNSW (cosine) and Postgres full-text search, fused.

Fusion is reciprocal rank fusion (k=60) over the top candidates of each list. RRF alone is rank
based, so a nonsense query would still score its best hit 1.0; the reported score therefore
blends the normalised RRF (rrf / rrf_max, in [0,1]) with the chunk's absolute cosine similarity
(clamped at 0): score = (rrf/rrf_max + max(cos, 0)) / 2. It stays in [0,1], ranks like RRF, and
a `score_threshold` cuts results that neither matched the query's words nor its meaning.

The legs are separate queries, so that they can run at once on two connections; each returns its
best chunk ids with their cosine distances, `fuse` scores them, and a third query reads the best
ones' rows (activities/search.py runs them).

Chunks reference their vector_store.file (ON DELETE CASCADE, migration 0006), and the final select
joins the live file rows besides, so a deleted file is never a search result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    import numpy as np

    from assistants.db.pool import Conn
    from assistants.settings import Settings

# Candidates taken from each of the vector and full-text lists before fusion.
SEARCH_CANDIDATES = 100
RRF_K = 60
RRF_MAX = 2.0 / (RRF_K + 1)
_OPS = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v.tolist()) + "]"


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

    # Measured on real text with the migrations' graph (m 24, ef_construction 200;
    # bench/bench_retrieval_real.py, bench/RESULTS.md): the smallest ef with recall@10 >= 0.98 of
    # exact; 300 from 200k chunks is extrapolated.
    ef_schedule: tuple[tuple[int, int], ...] = ((0, 100), (30_000, 150), (60_000, 200), (200_000, 300))
    # An attribute filter lowers recall at a given ef (bench: 0.966 at 100k chunks with ef 200 under
    # a filter a quarter of the chunks pass, 0.981 at 800, for about the same latency).
    filtered_ef_factor: int = 4
    iterative_scan: Literal["off", "relaxed_order", "strict_order"] = "relaxed_order"
    max_scan_tuples: int = 20_000
    # Query words in more than this fraction of all chunks are left out of the full-text leg, and
    # words beyond the first (rarest first) once the words kept match this many chunks (estimated).
    common_term_frequency: float = 0.05
    text_match_budget: int = 5_000
    # The two legs at once, on two connections: the latency of the slower leg instead of both added
    # up. Off by default: at 100k chunks on 2 cores it saved 0.7 of 15.5 ms at p50 and cost 22% of
    # the searches/s with 8 at once (bench/RESULTS.md).
    parallel_legs: bool = False

    @classmethod
    def from_settings(cls, s: Settings) -> SearchTuning:
        return cls(
            ef_schedule=parse_ef_schedule(s.file_search_ef_search),
            iterative_scan=s.file_search_iterative_scan,
            max_scan_tuples=s.file_search_max_scan_tuples,
            common_term_frequency=s.file_search_common_term_frequency,
            text_match_budget=s.file_search_text_match_budget,
            filtered_ef_factor=s.file_search_filtered_ef_factor,
            parallel_legs=s.file_search_parallel_legs,
        )


async def tune_search(conn: Conn, tuning: SearchTuning, filtered: bool = False) -> int:
    """Set the HNSW scan settings for the current transaction; returns the ef_search chosen.
    One round trip: the index's size is the planner's estimate (pg_class.reltuples), no count.
    A filtered search walks with `filtered_ef_factor` times the ef (at most 1000)."""
    factor = tuning.filtered_ef_factor if filtered else 1
    row = await (
        await conn.execute(
            """
SELECT set_config('hnsw.ef_search', least(ef * %(factor)s, 1000)::text, true) AS ef,
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
                "factor": factor,
            },
        )
    ).fetchone()
    return int(row["ef"]) if row else min(tuning.ef_schedule[0][1] * factor, 1000)


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


_TSQ = """WITH lexemes AS (
  -- How many chunks hold each of the most common lexemes, from the table's own statistics
  -- (ANALYZE keeps the most common elements of `tsv` and the fraction of rows holding each).
  SELECT m.lexeme, m.freq, greatest(t.reltuples, 0) AS chunks
  FROM pg_stats s
  JOIN pg_namespace n ON n.nspname = s.schemaname
  JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = s.tablename,
  unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS m(lexeme, freq)
  WHERE t.oid = 'vector_store_chunks'::regclass AND s.attname = 'tsv'
),
q AS MATERIALIZED (
  -- Any query word may match (OR), not all of them: questions rarely repeat a passage verbatim.
  -- The leg ranks every chunk that matches, so its cost follows the matches, and common words
  -- match many chunks while telling little apart. Words are taken rarest first and kept while
  -- each is in at most the `common` fraction of chunks and, all together, in at most `budget`
  -- chunks (estimated); the rarest word always stays. Words the statistics do not list are rarer
  -- than any they do.
  SELECT CASE WHEN numnode(p) = 0 THEN p ELSE (
           SELECT to_tsquery('simple', string_agg(term, ' | ')) FROM (
             SELECT w.term, coalesce(l.freq, 0) AS freq,
                    row_number() OVER rarest AS nth,
                    sum(coalesce(l.freq * l.chunks, 0)) OVER rarest AS matches
             FROM unnest(string_to_array(p::text, ' & ')) AS w(term)
             LEFT JOIN lexemes l ON quote_literal(l.lexeme) = w.term
             WINDOW rarest AS (ORDER BY coalesce(l.freq, 0), w.term)) terms
           WHERE nth = 1 OR (freq <= %(common)s AND matches <= %(budget)s))
         END AS tsq
  FROM plainto_tsquery('english', %(text)s) AS p
)"""
_VECTOR_LEG = """WITH nearest AS MATERIALIZED (
  -- The vector is a parameter, and the ORDER BY against it a constant: that is what uses HNSW.
  SELECT c.id, c.embedding <=> %(emb)s::vector AS dist FROM vector_store_chunks c
  WHERE c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {files}
  ORDER BY c.embedding <=> %(emb)s::vector LIMIT %(k)s
)
-- Sorted again: an iterative scan (relaxed_order) returns the chunks it finds as it walks on in
-- the order found, and a closer one may come after a farther one. MATERIALIZED above keeps the
-- planner from trusting the index's order and skipping this sort.
SELECT id, dist FROM nearest ORDER BY dist, id"""
_TEXT_LEG = (
    _TSQ
    + """,
ranked AS (
  -- ts_rank, not ts_rank_cd: on the question set of bench/bench_retrieval_real.py it finds the
  -- answer's chunk in the top 10 for 0.41 of the questions against 0.18, and costs less per match.
  SELECT c.id, c.embedding, ts_rank(c.tsv, q.tsq) AS rank FROM vector_store_chunks c, q
  WHERE c.tsv @@ q.tsq AND c.project_id = %(project)s AND c.vector_store_id = ANY(%(stores)s) {files}
  ORDER BY rank DESC, c.id LIMIT %(k)s
)
-- The distances of the top k only: fusion needs them, and this leg runs beside the vector leg.
SELECT id, embedding <=> %(emb)s::vector AS dist FROM ranked ORDER BY rank DESC, id"""
)
_RESULTS = """SELECT c.id, c.file_id, c.vector_store_id, c.content, c.chunk_index, r.score,
       fi.data->>'filename' AS filename, coalesce(f.data->'attributes', '{{}}'::jsonb) AS attributes
FROM unnest(%(ids)s::text[], %(scores)s::float8[]) WITH ORDINALITY AS r(id, score, n)
JOIN vector_store_chunks c ON c.id = r.id AND c.project_id = %(project)s
-- Inner joins: only chunks whose file and vector_store.file are live rows are ever returned.
JOIN files fi ON fi.id = c.file_id
JOIN vector_store_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id
-- The filter once more: a file id may pass in one of the stores and not in another.
WHERE true {fcond}
ORDER BY r.n
LIMIT %(limit)s"""
# One leg's chunks alone, in its own order (benchmarks: bench/bench_retrieval_real.py).
LEG_ROWS = """SELECT c.id, c.content FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS l(id, r)
JOIN vector_store_chunks c USING (id) ORDER BY l.r LIMIT %(limit)s"""


def leg_query(leg: Literal["vector", "text"], filtered: bool) -> sql.Composed:
    """One leg's chunk ids, best first (at most k), with their distances for the vector leg. Params:
    emb (vector) or text, common and budget (text), project, stores, k, and `files` (the ids that
    pass the filters) when `filtered`."""
    files = sql.SQL(" AND c.file_id = ANY(%(files)s)") if filtered else sql.SQL("")
    return sql.SQL(_VECTOR_LEG if leg == "vector" else _TEXT_LEG).format(files=files)


def results_query(filters: dict[str, Any] | None) -> tuple[sql.Composed, dict[str, Any]]:
    """The rows of the fused candidates (ids, scores: best first), in that order, at most `limit`,
    each checked against the live files and `filters`; and the filter's params (BadFilter on a bad
    filter). The caller adds project and limit."""
    fparams: dict[str, Any] = {}
    fcond = (sql.SQL(" AND ") + filter_sql(filters, fparams)) if filters else sql.SQL("")
    return sql.SQL(_RESULTS).format(fcond=fcond), fparams


def fuse(vector: list[dict[str, Any]], text: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(chunk id, score), best first, of the legs' candidates (id and distance, best first): the
    normalised RRF of the chunk's ranks blended with its cosine similarity (module docstring);
    ties go to the smaller id."""
    rrf: dict[str, float] = {}
    dist: dict[str, float] = {}
    for rows in (vector, text):
        for rank, row in enumerate(rows, 1):
            rrf[row["id"]] = rrf.get(row["id"], 0.0) + 1.0 / (RRF_K + rank)
            dist[row["id"]] = float(row["dist"])
    scored = [(cid, (r / RRF_MAX + max(1.0 - dist[cid], 0.0)) / 2) for cid, r in rrf.items()]
    return sorted(scored, key=lambda item: (-item[1], item[0]))
