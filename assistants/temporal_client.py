"""The one way to connect a Temporal client: with the payload codec of this process's keys (and
the tracing interceptor when traces are on).

API, workers, the stack's readiness probe, tests and benches all connect here, so no process
writes unencrypted payloads (or fails to read encrypted ones) by having connected without it.
"""

from __future__ import annotations

import logging

from temporalio.client import Client

from assistants.codec import data_converter
from assistants.keyring import load_keyring
from assistants.settings import Settings
from assistants.tracing import temporal_interceptors

log = logging.getLogger(__name__)


async def connect_temporal(
    settings: Settings, address: str | None = None, namespace: str | None = None
) -> Client:
    """A client of `address` (default TEMPORAL_ADDRESS) whose payloads go through the codec."""
    target = address or settings.temporal_address
    if not target:
        raise RuntimeError("TEMPORAL_ADDRESS is not set")
    keyring = load_keyring(settings)
    if keyring is None:
        log.warning(
            "no ASSISTANTS_PAYLOAD_KEY and no key file in the data dir: Temporal payloads are not encrypted"
        )
    return await Client.connect(
        target,
        namespace=namespace or settings.temporal_namespace,
        data_converter=data_converter(keyring),
        interceptors=temporal_interceptors(settings),  # traces, when on: workers inherit them
    )
