"""`assistants api`: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from assistants.logjson import configure_logging
from assistants.settings import get_settings


def serve(host: str | None = None, port: int | None = None) -> int:
    settings = get_settings()
    configure_logging(settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through the process's handler (text or JSON)
        timeout_graceful_shutdown=5,
    )
    return 0
