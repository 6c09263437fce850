"""Log lines of a request carry the run's ids when its path names one (assistants/logjson.py).

`/v1/threads/{thread_id}/runs/{run_id}...` binds both ids and the workflow id (a run's workflow
id is its run id: api/run_start.py); the project is bound once the API key is known (api/deps.py).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from assistants.logjson import log_context

_RUN_PATH = re.compile(r"^/v1/threads/(?P<thread_id>[^/]+)(?:/runs/(?P<run_id>[^/]+))?")


class LogContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = _RUN_PATH.match(scope.get("path", ""))
        ids = m.groupdict() if m else {}
        if ids.get("thread_id") == "runs":  # POST /v1/threads/runs: no ids in the path
            ids = {}
        with log_context(**ids, workflow_id=ids.get("run_id")):
            await self.app(scope, receive, send)
