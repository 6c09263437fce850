"""IngestFileWorkflow: one file into one vector store. Workflow id = `ingest-<store>-<file>`,
so adding a file twice finds the running ingestion instead of starting a second one.

parse (file -> text, kept in Postgres) -> embed (chunk with the model's tokenizer, embed in batches,
write every chunk and complete the file in one transaction). An unsupported or unreadable file
fails its vector_store.file with `last_error`; cancelling (file removed, batch cancelled) marks it
cancelled. `stage` (a query) shows progress in the Temporal UI.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from assistants.payloads import IngestFileInput, IngestFileResult, MarkFileInput
    from workflows import ingest_options as options
    from workflows.activity_refs import RetrievalActivities

PERMANENT = ("unsupported_file", "invalid_file")


@workflow.defn
class IngestFileWorkflow:
    def __init__(self) -> None:
        self._stage = "queued"

    @workflow.run
    async def run(self, inp: IngestFileInput) -> IngestFileResult:
        try:
            self._stage = "parsing"
            await workflow.execute_activity_method(
                RetrievalActivities.parse_file,
                inp,
                start_to_close_timeout=options.PARSE_TIMEOUT,
                # An activity option, not a new command: histories recorded without it replay.
                heartbeat_timeout=options.PARSE_HEARTBEAT,
                retry_policy=options.INGEST_RETRY,
            )
            self._stage = "embedding"
            out = await workflow.execute_activity_method(
                RetrievalActivities.embed_file,
                inp,
                start_to_close_timeout=options.EMBED_TIMEOUT,
                heartbeat_timeout=options.EMBED_HEARTBEAT,
                retry_policy=options.INGEST_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, CancelledError):  # the workflow was cancelled mid-activity
                self._stage = "cancelled"
                await self._mark(inp, "cancelled")
                raise
            code = (
                cause.type
                if isinstance(cause, ApplicationError) and cause.type in PERMANENT
                else "server_error"
            )
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            self._stage = "failed"
            await self._mark(inp, "failed", code, message)
            return IngestFileResult(status="failed", error_code=code, error_message=message)
        except asyncio.CancelledError:
            self._stage = "cancelled"
            await self._mark(inp, "cancelled")
            raise
        self._stage = "completed"
        return IngestFileResult(status="completed", chunks=out.chunks)

    @workflow.query
    def stage(self) -> str:
        return self._stage

    async def _mark(
        self, inp: IngestFileInput, status: str, code: str | None = None, message: str | None = None
    ) -> None:
        await workflow.execute_activity_method(
            RetrievalActivities.mark_file,
            MarkFileInput(
                project_id=inp.project_id,
                vector_store_id=inp.vector_store_id,
                file_id=inp.file_id,
                status=status,
                error_code=code,
                error_message=message,
            ),
            start_to_close_timeout=options.MARK_TIMEOUT,
            retry_policy=options.MARK_RETRY,
        )
