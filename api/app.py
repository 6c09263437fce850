"""The FastAPI application: thin. Routes validate, authorize, read/write rows, and start, update or
cancel workflows. It never runs a model or user code, and holds no state of its own, so any
number of replicas can serve the same database and Temporal namespace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api import codec_server
from api import metrics as api_metrics
from api.errors import install_error_handlers
from api.limits import install_handlers as install_limit_handlers
from api.limits_body import BodyLimitMiddleware
from api.log_context import LogContextMiddleware
from api.metrics import MetricsMiddleware
from api.routers import (
    assistants,
    conversations,
    files,
    health,
    input_tokens,
    messages,
    models,
    playground,
    responses,
    run_stream,
    runs,
    steps,
    threads,
    uploads,
    vector_store_file_batches,
    vector_store_files,
    vector_store_search,
    vector_stores,
    webhooks,
)
from assistants.db.migrate import apply_migrations
from assistants.db.pool import open_pool
from assistants.keyring import load_keyring
from assistants.settings import Settings, get_settings
from assistants.temporal_client import connect_temporal
from assistants.tracing import configure as configure_tracing

log = logging.getLogger(__name__)


async def _connect_temporal(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError("TEMPORAL_ADDRESS is not set")
    last: Exception | None = None
    for _ in range(60):
        try:
            return await connect_temporal(settings)
        except Exception as exc:  # noqa: BLE001 - the server may still be starting
            last = exc
            await asyncio.sleep(1)
    raise RuntimeError(f"cannot reach Temporal at {settings.temporal_address}: {last}")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        await asyncio.to_thread(apply_migrations, settings.database_url)
        app.state.settings = settings
        app.state.pool = await open_pool(settings.database_url, max_size=20)
        app.state.keyring = load_keyring(settings)
        # Before the Temporal client connects: its SDK metrics go to the default runtime.
        api_metrics.temporal_runtime(settings)
        app.state.temporal = await _connect_temporal(settings)
        sealed = await webhooks.seal_stored_secrets(app.state.pool, app.state.keyring)
        if sealed:
            log.info("sealed %d webhook secrets stored in plaintext", sealed)
        stop_metrics = api_metrics.start(app.state.pool, settings.metrics_host, settings.metrics_port)
        try:
            yield
        finally:
            if stop_metrics is not None:
                stop_metrics()
            hub = getattr(app.state, "run_event_hub", None)
            if hub is not None:
                await hub.close()
            await app.state.pool.close()

    app = FastAPI(title="Assistants API", version="2", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    install_error_handlers(app)

    install_limit_handlers(app)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(LogContextMiddleware)  # every line of a run-scoped request carries its ids
    app.add_middleware(MetricsMiddleware)  # outermost: counts what the body limit refuses too
    if configure_tracing(settings, "api"):  # before the lifespan opens the pool
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # One server span per request; none per ASGI message (an SSE stream sends thousands).
        FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])

    # runs before threads: POST /v1/threads/runs must not match POST /v1/threads/{thread_id}.
    for router in (
        health.router,
        models.router,
        assistants.router,
        runs.router,
        threads.router,
        messages.router,
        run_stream.router,
        steps.router,
        files.router,
        uploads.router,
        vector_stores.router,
        vector_store_files.router,
        vector_store_file_batches.router,
        vector_store_search.router,
        playground.router,
        webhooks.router,
        input_tokens.router,  # before responses' /{response_id} routes
        responses.router,  # issue 15
        conversations.router,
        codec_server.router,
    ):  # files, vector_stores: issue 5
        app.include_router(router)
    return app
