"""VectorStoreSearchWorkflow: POST /v1/vector_stores/{id}/search. The query is embedded on a
worker (the API never runs a model), so the search is one short activity behind a workflow the
API executes and awaits."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from assistants.payloads import FileSearchInput, FileSearchOutput
    from workflows import ingest_options as options
    from workflows.activity_refs import RetrievalActivities


@workflow.defn
class VectorStoreSearchWorkflow:
    @workflow.run
    async def run(self, inp: FileSearchInput) -> FileSearchOutput:
        return await workflow.execute_activity_method(
            RetrievalActivities.file_search,
            inp,
            start_to_close_timeout=options.SEARCH_TIMEOUT,
            retry_policy=options.SEARCH_RETRY,
        )
