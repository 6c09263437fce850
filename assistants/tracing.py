"""OpenTelemetry traces of every process (issue 17), off unless ASSISTANTS_OTEL_ENABLED.

One trace follows a request through Temporal. The API's server span (FastAPI instrumentation)
is the parent of the client call `StartWorkflow:RunWorkflow`; Temporal's TracingInterceptor
carries that context in the workflow's headers to the runs worker (`RunWorkflow:RunWorkflow`),
and from each activity call (`StartActivity:x`) to the worker that runs it (`RunActivity:x`),
under which the psycopg and httpx instrumentations record each query and outgoing HTTP call.
Workflow spans are written by the interceptor outside the sandbox and never on replay, so
workflow code stays as it is.

Off, nothing here runs: OpenTelemetry's API keeps its no-op default, no interceptor is added,
nothing is exported.
"""

from __future__ import annotations

import logging

from temporalio.client import Interceptor

from assistants.settings import Settings

log = logging.getLogger(__name__)

SERVICE_PREFIX = "assistants-"
_configured: str | None = None  # the service this process traces as, once configured


def configure(settings: Settings, role: str) -> bool:
    """Trace this process as service `assistants-<role>`: a tracer provider that exports over
    OTLP/HTTP in batches, and psycopg and httpx instrumented. Call before the pool opens (psycopg
    is instrumented at connect). False, and nothing done, when tracing is off."""
    global _configured
    if not settings.otel_enabled:
        return False
    if _configured is not None:  # a second app in one process (tests) shares the first's provider
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: SERVICE_PREFIX + role}))
    endpoint = _traces_endpoint(settings.otel_exporter_otlp_endpoint)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))  # flushed at exit
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _configured = SERVICE_PREFIX + role
    log.info("tracing as %s to %s", _configured, endpoint or "the OTLP default endpoint")
    return True


def temporal_interceptors(settings: Settings) -> list[Interceptor]:
    """For Client.connect: the client's calls start spans and carry their context in headers;
    workers built on the client inherit it (workflow and activity spans)."""
    if not settings.otel_enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def _traces_endpoint(base: str | None) -> str | None:
    # OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; the traces path is appended, as
    # the SDK does when it reads the variable itself. None: the SDK's default (localhost:4318).
    return f"{base.rstrip('/')}/v1/traces" if base else None
