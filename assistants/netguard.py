"""Outbound requests on a project's behalf (webhooks) must not reach the server's own network:
loopback, private, link-local (cloud metadata) and other non-public addresses are refused unless the
deployment allows them (dev does, so tests and local receivers work).

A name is resolved once (`resolve_pinned`) and the request then connects to that address: a second
lookup at connect time could answer differently (DNS rebinding) and reach what the check refused.
IPv6 forms that carry an IPv4 address (NAT64, 6to4, IPv4-mapped and -compatible) are refused
outright: through a translator they reach IPv4 hosts that the check never saw."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedAddress(Exception):
    def __init__(self, address: str) -> None:
        super().__init__(f"{address} is not a public address")
        self.address = address


def _embeds_ipv4(addr: ipaddress.IPv6Address) -> bool:
    return (
        addr.ipv4_mapped is not None
        or addr in _IPV4_COMPATIBLE
        or addr in _SIX_TO_FOUR
        or any(addr in net for net in _NAT64)
    )


def _non_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and _embeds_ipv4(addr):
        return True
    return not addr.is_global or addr.is_multicast


async def _addresses(host: str) -> list[str]:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]  # a literal address: nothing to resolve
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def non_public_address(host: str) -> str | None:
    """The first non-public address `host` is or resolves to; None if all are public or it does not
    resolve (an unresolvable host fails at delivery and is retried)."""
    try:
        addresses = await _addresses(host)
    except OSError:
        return None
    return next((a for a in addresses if _non_public(a)), None)


async def resolve_pinned(host: str, allow_private: bool = False) -> str:
    """The one address to connect to for `host`, from a single lookup. Raises BlockedAddress if any
    of its addresses is not public (unless `allow_private`), OSError if it does not resolve."""
    addresses = await _addresses(host)
    if not addresses:
        raise OSError(f"{host} has no address")
    if not allow_private:
        blocked = next((a for a in addresses if _non_public(a)), None)
        if blocked is not None:
            raise BlockedAddress(blocked)
    return addresses[0].split("%", 1)[0]
