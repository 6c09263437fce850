"""Outbound requests on a project's behalf (webhooks) must not reach the server's own network:
loopback, private, link-local (cloud metadata) and other non-public addresses are refused unless the
deployment allows them (dev does, so tests and local receivers work)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


def _non_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    return not addr.is_global or addr.is_multicast


async def non_public_address(host: str) -> str | None:
    """The first non-public address `host` is or resolves to; None if all are public or it does not
    resolve (an unresolvable host fails at delivery and is retried)."""
    try:
        return host if _non_public(host) else None
    except ValueError:
        pass  # a name, not a literal address
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return next((str(info[4][0]) for info in infos if _non_public(str(info[4][0]))), None)
