"""Timeouts and retry policies of the ingestion and search activities, named once."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Parsing a large PDF takes a while; it has no natural heartbeat points, so it gets a long timeout.
PARSE_TIMEOUT = timedelta(minutes=30)
# Embedding heartbeats after every batch; a killed worker is noticed within EMBED_HEARTBEAT.
EMBED_TIMEOUT = timedelta(hours=6)
EMBED_HEARTBEAT = timedelta(minutes=2)
INGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["unsupported_file", "invalid_file"],
)

MARK_TIMEOUT = timedelta(seconds=30)
MARK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30), maximum_attempts=50
)

# Search is interactive: fail fast rather than retry for long behind a waiting client.
SEARCH_TIMEOUT = timedelta(seconds=60)
SEARCH_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
    non_retryable_error_types=["InvalidRequest"],
)
# The API's whole wait for a search workflow.
SEARCH_WORKFLOW_TIMEOUT = timedelta(seconds=120)
