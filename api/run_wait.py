"""Long polling for the SDK's poll helpers (`runs.create_and_poll`, `runs.poll`, ...).

The helpers re-read a run until it settles and, between reads, sleep what the response's
`openai-poll-after-ms` header says (1000 ms when it is absent). On a run that takes seconds, that
sleep alone adds up to a second to every run and, with many concurrent runs, a steady stream of
reads. A read marked as the helper's (`X-Stainless-Poll-Helper: true`) therefore waits, up to
`LONG_POLL_S`, for the run's status to change (a `run_status` NOTIFY through the process's
`RunEventHub`; re-read every `RECHECK_S` in case one is lost) and answers `openai-poll-after-ms:
0`: the next read is the next wait. Any other read answers at once, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from api.sse_hub import RunEventHub
from assistants.db.runlog import STATUS_CHANNEL
from assistants.objects import TERMINAL_RUN_STATUSES

LONG_POLL_S = 10.0  # well under any client or proxy read timeout
RECHECK_S = 2.0  # re-read this often even without a NOTIFY
POLL_AFTER_HEADER = "openai-poll-after-ms"
POLL_HELPER_HEADER = "x-stainless-poll-helper"
# The statuses the SDK's poll helpers return on; waiting on them would only delay the answer.
SETTLED = frozenset({*TERMINAL_RUN_STATUSES, "requires_action"})


async def wait_for_change(
    hub: RunEventHub, run_id: str, read: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`read()` the run; while it is unsettled, wait for its status to change (or LONG_POLL_S)."""
    wake = hub.subscribe(run_id, STATUS_CHANNEL)  # before the first read: no change slips between
    try:
        run = await read()
        deadline = time.monotonic() + LONG_POLL_S
        status = run["status"]
        while run["status"] == status and status not in SETTLED:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(wake.wait(), min(left, RECHECK_S))
            except TimeoutError:
                pass
            wake.clear()  # before the read: a change committed after it wakes the next wait
            run = await read()
        return run
    finally:
        hub.unsubscribe(run_id, wake, STATUS_CHANNEL)
