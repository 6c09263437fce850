"""Local-directory storage (the default): <root>/<project_id>/<file_id>, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from assistants.storage.base import CHUNK, FileStorage, LimitedReader, key_of


class LocalStorage(FileStorage):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, project_id: str, file_id: str) -> Path:
        return self.root / key_of(project_id, file_id)

    def put(self, project_id: str, file_id: str, src: BinaryIO, max_bytes: int) -> int:
        path = self._path(project_id, file_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        reader = LimitedReader(src, max_bytes)
        # Write beside the target and rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(reader, out, CHUNK)  # type: ignore[misc]
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return reader.count

    def iter_bytes(self, project_id: str, file_id: str) -> Iterator[bytes]:
        with open(self._path(project_id, file_id), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, project_id: str, file_id: str) -> None:
        self._path(project_id, file_id).unlink(missing_ok=True)
