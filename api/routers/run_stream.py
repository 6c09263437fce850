"""GET /v1/threads/{thread_id}/runs/{run_id}/events: a run's event stream, resumable.

An extension to the OpenAI API (which only streams in the response to the request that creates
the run or submits tool outputs): it serves the same events with the same ids, so a client whose
connection dropped resumes with `Last-Event-ID` (as a browser EventSource does by itself) or the
`after` query parameter, and gets every event after that one exactly once. Without either it
replays the run from its first event. The stream ends like the create-run stream: after a
terminal run event or `thread.run.requires_action`, or at once if the run ended before the cursor.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from starlette.responses import StreamingResponse

from api.deps import Pool, Project
from api.errors import bad_request, not_found
from api.sse import run_stream
from api.sse_hub import Hub
from assistants.db import objects

router = APIRouter(tags=["runs"])


@router.get("/v1/threads/{thread_id}/runs/{run_id}/events")
async def stream_run_events(
    thread_id: str,
    run_id: str,
    project: Project,
    pool: Pool,
    hub: Hub,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    run = await objects.get(pool, "runs", project, run_id, thread_id=thread_id)
    if run is None:
        raise not_found("run", run_id)
    cursor = after or 0
    if last_event_id:  # the reconnecting client's own position wins over the URL it reuses
        if not last_event_id.strip().isdigit():
            raise bad_request(
                f"Invalid Last-Event-ID {last_event_id!r}: expected an event id from this stream.",
                "Last-Event-ID",
            )
        cursor = int(last_event_id)
    return run_stream(pool, hub, run_id, cursor, include=run.get("_include"))
