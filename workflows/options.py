"""Timeouts and retry policies of every activity call, named once.

Retries belong to Temporal: activities and their clients never retry on their own.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

STORE_TIMEOUT = timedelta(seconds=30)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=50,
)

# Generation heartbeats every couple of seconds; a worker that dies mid-generation is noticed
# after GENERATE_HEARTBEAT and the call is retried on another (or the restarted) worker.
GENERATE_TIMEOUT = timedelta(minutes=30)
GENERATE_HEARTBEAT = timedelta(seconds=10)
GENERATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    # Each worker crash costs an attempt; GENERATE_SCHEDULE_TO_CLOSE bounds them all in time.
    maximum_attempts=20,
    non_retryable_error_types=["ModelNotFound", "InvalidRequest"],
)

# Every attempt together, queueing included: a turn no inference worker takes (none running, or
# all saturated) fails the run with a clear error instead of leaving it in_progress forever.
GENERATE_SCHEDULE_TO_CLOSE = timedelta(hours=1)

# Built-in tools (code execution, file search) run on the runs queue; code may run for minutes.
TOOLS_TIMEOUT = timedelta(minutes=15)
TOOLS_HEARTBEAT = timedelta(seconds=30)
TOOLS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,  # bounded in time by TOOLS_SCHEDULE_TO_CLOSE
    non_retryable_error_types=["SandboxUnavailable", "InvalidRequest"],
)

TOOLS_SCHEDULE_TO_CLOSE = timedelta(hours=1)

# Upper bound of model turns in one run (tool call -> output -> next turn), so a model that
# keeps calling tools cannot loop forever.
MAX_TURNS = 16
