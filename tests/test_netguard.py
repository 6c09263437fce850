"""Webhooks may not be pointed at the server's own network in production (SSRF guard)."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import httpx
import pytest

from activities.webhooks import make_http_client, post_pinned
from assistants.netguard import BlockedAddress, non_public_address, resolve_pinned
from assistants.settings import Settings

KEY = base64.b64encode(bytes(32)).decode()  # production also needs a payload key


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254", "::1", "fd00::1", "localhost", "0.0.0.0"],
)
async def test_non_public_hosts_are_caught(host: str) -> None:
    assert await non_public_address(host) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700:4700::1111", "no-such-host.invalid"])
async def test_public_or_unresolvable_hosts_pass(host: str) -> None:
    assert await non_public_address(host) is None


def test_private_targets_allowed_in_dev_only_by_default() -> None:
    assert Settings(env="dev").webhooks_may_reach_private
    prod = Settings(
        env="production", database_url="postgresql://x", temporal_address="t:7233", payload_key=KEY
    )
    assert not prod.webhooks_may_reach_private
    assert Settings(
        env="production",
        database_url="postgresql://x",
        temporal_address="t:7233",
        payload_key=KEY,
        webhook_allow_private=True,
    ).webhooks_may_reach_private


def test_production_refuses_an_unsafe_sandbox() -> None:
    with pytest.raises(ValueError, match="SANDBOX_UNSAFE"):
        Settings(
            env="production",
            database_url="postgresql://x",
            temporal_address="t:7233",
            payload_key=KEY,
            sandbox_unsafe=True,
        )


@pytest.mark.parametrize(
    "host",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address: still reaches IPv4 through a translator
        "64:ff9b:1::a00:1",  # local-use NAT64 (RFC 8215)
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:8.8.8.8",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::8.8.8.8",
    ],
)
async def test_ipv6_forms_that_embed_ipv4_are_refused(host: str) -> None:
    assert await non_public_address(host) == host
    with pytest.raises(BlockedAddress):
        await resolve_pinned(host)


class _Rebinding:
    """getaddrinfo that answers a public address first and loopback afterwards (DNS rebinding)."""

    def __init__(self) -> None:
        self.lookups = 0

    async def __call__(self, host: str, port: Any, **_: Any) -> list[Any]:
        self.lookups += 1
        ip = "93.184.216.34" if self.lookups == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))]


class _Recorder(httpx.AsyncBaseTransport):
    """Where the client would connect: the request as it reaches the connection pool."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


async def test_delivery_connects_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = _Rebinding()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    recorder = _Recorder()
    async with httpx.AsyncClient(transport=recorder, trust_env=False) as http:
        resp = await post_pinned(http, "https://hook.example:8443/in?x=1", b"{}", {"x-sig": "s"})
    assert resp.status_code == 204
    assert resolver.lookups == 1  # one lookup: the check's
    (req,) = recorder.requests
    assert req.url.host == "93.184.216.34" and req.url.port == 8443 and req.url.path == "/in"
    assert req.headers["host"] == "hook.example:8443"
    assert req.extensions["sni_hostname"] == "hook.example"  # TLS still verifies the name
    # And the rebinding answer, were it asked first, is refused before any connection.
    with pytest.raises(BlockedAddress):
        await post_pinned(http, "https://hook.example/in", b"{}", {})
    assert len(recorder.requests) == 1


async def test_delivery_reaches_a_real_receiver_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end over a socket: a name that resolves (once) to loopback, allowed as in dev."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def resolve(host: str, *_: Any, **__: Any) -> list[Any]:
        assert host == "receiver.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    async with server, make_http_client(Settings()) as http:
        resp = await post_pinned(http, f"http://receiver.test:{port}/hook", b"{}", {}, allow_private=True)
    assert resp.status_code == 200
    assert b"host: receiver.test:" in seen[0].lower()


def test_webhook_client_ignores_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert make_http_client(Settings()).trust_env is False
