"""`assistants api`: serve the API with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from assistants.settings import get_settings


def serve(host: str | None = None, port: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0
