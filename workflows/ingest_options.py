"""Timeouts and retry policies of the ingestion and search activities, named once."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Parsing runs in a child process (a time limit of its own, ASSISTANTS_PARSE_TIMEOUT_SECONDS) while
# the activity heartbeats every few seconds: a killed worker is noticed within PARSE_HEARTBEAT
# (with no heartbeat timeout, ingestion waited out the whole 30 minutes after a worker crash).
PARSE_TIMEOUT = timedelta(minutes=30)
PARSE_HEARTBEAT = timedelta(seconds=30)
# Embedding heartbeats every few seconds; a killed worker is noticed within EMBED_HEARTBEAT.
EMBED_TIMEOUT = timedelta(hours=6)
EMBED_HEARTBEAT = timedelta(seconds=30)
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
