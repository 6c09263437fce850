"""Where the API keeps uploaded bytes (local disk or S3, by settings), and the file purposes it
accepts: shared by the files and uploads routers."""

from __future__ import annotations

from assistants.settings import Settings
from assistants.storage import FileStorage, make_storage

PURPOSES = ("assistants", "assistants_output", "vision", "user_data", "batch")
_storages: dict[int, FileStorage] = {}


def storage_for(settings: Settings) -> FileStorage:
    """One storage client per settings object (i.e. per process)."""
    key = id(settings)
    if key not in _storages:
        _storages[key] = make_storage(settings)
    return _storages[key]
