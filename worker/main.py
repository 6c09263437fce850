"""Worker processes. Builds every client once (pool, Temporal client, model registry) and hands
them to the activity classes; registers bound methods on the right task queue.

`runs` hosts the workflows and the store activities (CPU); `inference` hosts generation (GPU in
production), so the two fleets scale apart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from assistants import metrics
from assistants.db.migrate import apply_migrations
from assistants.db.pool import open_pool
from assistants.keyring import load_keyring
from assistants.logjson import RunLogContext, configure_logging
from assistants.settings import Settings, get_settings
from assistants.temporal_client import connect_temporal
from assistants.tracing import configure as configure_tracing
from worker.metrics import ActivityMetrics, engine_collector, sandbox_collector

log = logging.getLogger("assistants.worker")


async def _connect(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise SystemExit(
            "TEMPORAL_ADDRESS is not set (start the stack with `assistants up`, or point it at a cluster)"
        )
    return await connect_temporal(settings)


def _retrieval_activities(pool, settings: Settings):  # type: ignore[no-untyped-def]
    """Ingestion and search. The embedding model loads once per process, on first use."""
    from activities.embeddings import shared_embedder
    from activities.parsing import ParseLimits
    from activities.retrieval import RetrievalActivities
    from assistants.db.search_sql import SearchTuning
    from assistants.storage import make_storage

    embedder = shared_embedder(
        settings.embedding_model, settings.embedding_batch_size, settings.embedding_dtype
    )
    return RetrievalActivities(
        pool,
        make_storage(settings),
        embedder,
        ParseLimits.from_settings(settings),
        SearchTuning.from_settings(settings),
    )


def _tool_activities(pool, settings: Settings, retrieval):  # type: ignore[no-untyped-def]
    """Built-in tools in runs: one sandbox session per thread lives in this process."""
    from activities.sandbox import sessions_from_settings
    from activities.tools import ToolActivities

    return ToolActivities(pool, settings, retrieval.storage, retrieval, sessions_from_settings(settings))


def _runs_worker(client: Client, pool, settings: Settings) -> Worker:  # type: ignore[no-untyped-def]
    from activities.reconcile import ReconcileActivities
    from activities.store import StoreActivities
    from activities.webhooks import WebhookActivities, make_http_client
    from assistants.webhook_announcer import WebhookAnnouncer
    from workflows.ingest import IngestFileWorkflow
    from workflows.input_tokens import CountInputTokensWorkflow
    from workflows.reconcile import ReconcileRunsWorkflow
    from workflows.run import RunWorkflow
    from workflows.vector_store_search import VectorStoreSearchWorkflow
    from workflows.webhooks import WebhookDeliveryWorkflow

    announcer = WebhookAnnouncer(client, pool, settings, WebhookDeliveryWorkflow.run)
    store = StoreActivities(pool, settings, announcer)
    reconcile = ReconcileActivities(pool, client, announcer, settings)
    retrieval = _retrieval_activities(pool, settings)
    tools = _tool_activities(pool, settings, retrieval)
    if settings.metrics_port:
        metrics.register(sandbox_collector(tools.sessions))
    # Lives as long as the process (the worker's lifetime owns it, like the pool).
    webhooks = WebhookActivities(
        pool, make_http_client(settings), settings.webhooks_may_reach_private, load_keyring(settings)
    )
    return Worker(
        client,
        task_queue=settings.runs_task_queue,
        workflows=[
            RunWorkflow,
            IngestFileWorkflow,
            VectorStoreSearchWorkflow,
            CountInputTokensWorkflow,
            WebhookDeliveryWorkflow,
            ReconcileRunsWorkflow,
        ],
        activities=[
            store.start_run,
            store.build_prompt,
            store.complete_step,
            store.require_action,
            store.record_tool_outputs,
            store.finish_run,
            retrieval.parse_file,
            retrieval.embed_file,
            retrieval.mark_file,
            retrieval.file_search,
            tools.run_builtin_tools,
            webhooks.deliver_webhook,
            webhooks.fail_webhook_delivery,
            reconcile.reconcile_runs,
        ],
        max_concurrent_activities=64,
        interceptors=[RunLogContext(), ActivityMetrics()],
    )


def _inference_worker(client: Client, pool, settings: Settings) -> Worker:  # type: ignore[no-untyped-def]
    from activities.inference import InferenceActivities
    from activities.llm.registry import ModelRegistry

    registry = ModelRegistry(settings)
    registry.get(settings.default_model)  # load once, before taking work
    inference = InferenceActivities(registry, pool, settings)
    if settings.metrics_port:
        metrics.register(engine_collector(registry))
    # A full worker stops polling: back-pressure comes from Temporal's activity slots.
    return Worker(
        client,
        task_queue=settings.inference_task_queue,
        activities=[inference.generate, inference.count_input_tokens],
        max_concurrent_activities=settings.max_concurrent_generations,
        interceptors=[RunLogContext(), ActivityMetrics()],
    )


async def _main(queues: list[str]) -> None:
    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set")
    await asyncio.to_thread(apply_migrations, settings.database_url)
    wanted = {"runs", "inference"} if "all" in queues else set(queues)
    # Before the pool opens (psycopg is instrumented at connect): `worker-runs`, `worker-inference`.
    configure_tracing(settings, "-".join(["worker", *sorted(wanted)]))
    # Before the client connects: the Temporal SDK reports to the default runtime.
    metrics.temporal_runtime(settings.metrics_host, settings.temporal_metrics_port)
    stop_metrics = metrics.serve_metrics(settings.metrics_host, settings.metrics_port)
    client = await _connect(settings)
    pool = await open_pool(settings.database_url, max_size=20)
    workers = []
    if "runs" in wanted:
        from worker.schedules import ensure_reconcile_schedule

        workers.append(_runs_worker(client, pool, settings))
        await ensure_reconcile_schedule(client, settings)
    if "inference" in wanted:
        workers.append(await asyncio.to_thread(_inference_worker, client, pool, settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # OMP_WAIT_POLICY: set by `assistants worker` before torch loads (cli/main.py).
    log.info(
        "worker polling %s (OMP_WAIT_POLICY=%s)",
        ", ".join(sorted(wanted)),
        os.environ.get("OMP_WAIT_POLICY", "unset"),
    )
    tasks = [asyncio.create_task(w.run()) for w in workers]
    stopper = asyncio.create_task(stop.wait())
    # Exit when told to, or when any worker dies (the supervisor restarts the process).
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    if stop_metrics is not None:
        stop_metrics()
    failed = [r for r in results if isinstance(r, BaseException)]
    if stopper not in done and failed:
        raise SystemExit(f"worker stopped: {failed[0]!r}")


def run_worker(queues: list[str]) -> int:
    configure_logging(get_settings().log_format)
    asyncio.run(_main(queues))
    return 0
