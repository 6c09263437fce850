"""GET /v1/models: the models this deployment serves (configuration, not a database table)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AppSettings, Project
from api.errors import not_found

router = APIRouter(prefix="/v1/models", tags=["models"])
_CREATED = 1_700_000_000


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "system"}


@router.get("")
async def list_models(_: Project, settings: AppSettings) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(n) for n in settings.model_names()]}


@router.get("/{model_id:path}")
async def retrieve_model(model_id: str, _: Project, settings: AppSettings) -> dict[str, Any]:
    if model_id not in settings.model_names():
        raise not_found("model", model_id, "model")
    return model_object(model_id)
