"""Schedule, timeouts and retry policy of the run reconciler, named once."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# The schedule's id; each tick's workflow id is this plus the tick's timestamp (never a run id).
RECONCILE_SCHEDULE_ID = "assistants-reconcile-runs"
# Pages of active runs (ASSISTANTS_RECONCILE_BATCH_SIZE each) one tick may check; a larger
# backlog continues on the next tick, from where this one stopped.
MAX_BATCHES_PER_TICK = 10
# A tick that cannot finish is abandoned; with overlap SKIP a stuck tick would otherwise block
# every later one.
TICK_TIMEOUT = timedelta(minutes=10)
# Missed ticks (Temporal was down) are not replayed one by one: the next tick covers them.
CATCHUP_WINDOW = timedelta(minutes=1)

# One page: a SELECT and up to a batch of describe calls (16 at a time) and settles.
RECONCILE_TIMEOUT = timedelta(minutes=2)
RECONCILE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
