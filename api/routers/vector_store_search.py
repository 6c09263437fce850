"""/v1/vector_stores/{id}/search: run through VectorStoreSearchWorkflow, since embedding the query
needs the model, which only workers load."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter
from temporalio.client import Client

from api import short_workflow
from api.deps import AppSettings, Pool, Project, Temporal
from api.errors import bad_request
from api.vector_store_ops import refuse_expired_stores, require_store
from assistants.db.search_sql import BadFilter, results_query
from assistants.payloads import FileSearchInput, FileSearchOutput
from assistants.schemas import VectorStoreSearch
from assistants.settings import Settings
from workflows.ingest_options import SEARCH_WORKFLOW_TIMEOUT
from workflows.vector_store_search import VectorStoreSearchWorkflow

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])


async def run_search(temporal: Client, settings: Settings, inp: FileSearchInput) -> FileSearchOutput:
    out: FileSearchOutput = await short_workflow.execute(
        temporal,
        VectorStoreSearchWorkflow.run,
        inp,
        id_prefix="search",
        task_queue=settings.runs_task_queue,
        execution_timeout=SEARCH_WORKFLOW_TIMEOUT,
        param="filters",
        what="The search",
    )
    return out


# Words a keyword-ish rewrite drops: question words, articles, auxiliaries, pronouns.
_STOPWORDS = frozenset(
    "a an the is are was were be been being do does did what which who whom whose when where why how"
    " i me my we our you your he she it its they them their this that these those of in on at to for"
    " from by with about into and or but can could would should will shall may might must please tell"
    " show find give explain describe there any some".split()
)
_WORD = re.compile(r"[\w'-]+")


def rewrite(query: str) -> str:
    """`rewrite_query`: a deterministic rewrite of a natural-language question into the words that
    carry its meaning (lowercased, punctuation, question words and filler dropped). A query made
    only of such words is kept as given."""
    words = [w for w in _WORD.findall(query.lower()) if w.strip("'-") and w not in _STOPWORDS]
    return " ".join(words) or query.strip()


def merge(per_query: list[FileSearchOutput], limit: int) -> list[Any]:
    """One ranking over several queries' results: each chunk once, at its best score."""
    best: dict[tuple[str, str], Any] = {}
    for out in per_query:
        for r in out.results:
            key = (r.file_id, r.text)
            if key not in best or r.score > best[key].score:
                best[key] = r
    return sorted(best.values(), key=lambda r: r.score, reverse=True)[:limit]


@router.post("/{store_id}/search")
async def search_vector_store(
    store_id: str,
    body: VectorStoreSearch,
    project: Project,
    pool: Pool,
    temporal: Temporal,
    settings: AppSettings,
) -> dict[str, Any]:
    await require_store(pool, project, store_id)
    await refuse_expired_stores(pool, project, [store_id], param=None)
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    if not queries or not all(q.strip() for q in queries):
        raise bad_request("query must not be empty.", "query")
    if any("\x00" in q for q in queries):  # Postgres text cannot hold NUL: the search would fail
        raise bad_request("query must not contain NUL characters.", "query")
    if body.filters is not None:
        try:
            results_query(body.filters)
        except BadFilter as exc:
            raise bad_request(str(exc), "filters") from None
    if body.rewrite_query:
        queries = [rewrite(q) for q in queries]
    queries = list(dict.fromkeys(queries))
    threshold = body.ranking_options.score_threshold if body.ranking_options else 0.0
    outs = await asyncio.gather(
        *(
            run_search(
                temporal,
                settings,
                FileSearchInput(
                    project_id=project,
                    query=q,
                    vector_store_ids=[store_id],
                    max_num_results=body.max_num_results,
                    score_threshold=threshold,
                    filters=body.filters,
                ),
            )
            for q in queries
        )
    )
    data = [
        {
            "file_id": r.file_id,
            "filename": r.filename,
            "score": r.score,
            "attributes": r.attributes,
            "content": [{"type": "text", "text": r.text}],
        }
        for r in merge(list(outs), body.max_num_results)
    ]
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
