"""S3 storage through boto3 (AWS, or any S3-compatible endpoint): <prefix><project_id>/<file_id>.

Retries belong to the caller (Temporal, or the client's request): boto3's own are kept minimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from assistants.storage.base import CHUNK, FileStorage, FileTooLarge, LimitedReader, key_of


class S3Storage(FileStorage):
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, signature_version="s3v4"),
        )

    def _key(self, project_id: str, file_id: str) -> str:
        return self.prefix + key_of(project_id, file_id)

    def put(self, project_id: str, file_id: str, src: BinaryIO, max_bytes: int) -> int:
        reader = LimitedReader(src, max_bytes)
        key = self._key(project_id, file_id)
        try:
            # upload_fileobj switches to a multipart upload for large bodies and aborts it on error.
            self.client.upload_fileobj(reader, self.bucket, key)
        except FileTooLarge:
            raise
        except Exception as exc:
            # boto3's transfer manager wraps errors raised inside read(); unwrap our own.
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, FileTooLarge):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from None
            raise
        return reader.count

    def iter_bytes(self, project_id: str, file_id: str) -> Iterator[bytes]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(project_id, file_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(file_id) from exc
            raise
        yield from obj["Body"].iter_chunks(CHUNK)

    def delete(self, project_id: str, file_id: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(project_id, file_id))
