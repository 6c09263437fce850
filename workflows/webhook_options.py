"""Timeouts and retry policy of webhook delivery, named once.

Delivery retries for days with exponential backoff capped at 10 minutes: a receiver that is down
for an hour gets its events within ~10 minutes of coming back. The HTTP client never retries.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# One POST. The HTTP client's own timeout (ASSISTANTS_WEBHOOK_TIMEOUT_SECONDS) must stay below it.
DELIVER_ATTEMPT_TIMEOUT = timedelta(seconds=60)
# No maximum_attempts: the delivery window (schedule-to-close, default 3 days) ends the retries.
DELIVER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=0,
)

RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30), maximum_attempts=50
)
