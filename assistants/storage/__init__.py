"""Where uploaded file bytes live: one interface, a local directory by default, S3 when configured.

Keys are `<project_id>/<file_id>`, so every project's objects sit under their own prefix.
"""

from __future__ import annotations

from assistants.settings import Settings
from assistants.storage.base import FileStorage, FileTooLarge


def make_storage(settings: Settings) -> FileStorage:
    if settings.storage_backend == "s3":
        from assistants.storage.s3 import S3Storage

        if not settings.s3_bucket:
            raise ValueError("ASSISTANTS_STORAGE_BACKEND=s3 needs ASSISTANTS_S3_BUCKET")
        return S3Storage(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    from assistants.storage.local import LocalStorage

    return LocalStorage(settings.storage_dir or settings.resolved_data_dir / "files")


__all__ = ["FileStorage", "FileTooLarge", "make_storage"]
