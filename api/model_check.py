"""The model a request names must be one this deployment serves (a 400 `model_not_found`)."""

from __future__ import annotations

from api.errors import bad_request
from assistants.settings import Settings


def check_model(settings: Settings, model: str) -> None:
    available = settings.model_names()
    if model not in available:
        raise bad_request(
            f"The model '{model}' does not exist. Available models: {', '.join(available)}.",
            "model",
            "model_not_found",
        )
