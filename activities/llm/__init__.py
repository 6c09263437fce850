"""Local inference: the prepared default model, the model registry and the batching engine.

Nothing here runs at import time (Temporal's sandbox re-imports modules), and importing the
package does not import torch: the names below resolve lazily, on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Engine": "activities.llm.engine",
    "GenerationRequest": "activities.llm.engine",
    "GenerationResult": "activities.llm.engine",
    "GenerationTimings": "activities.llm.engine",
    "LoadedModel": "activities.llm.registry",
    "ModelRegistry": "activities.llm.registry",
    "UnknownModelError": "activities.llm.registry",
    "prepare_default_model": "activities.llm.prepare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
