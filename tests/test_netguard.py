"""Webhooks may not be pointed at the server's own network in production (SSRF guard)."""

from __future__ import annotations

import pytest

from assistants.netguard import non_public_address
from assistants.settings import Settings


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
    prod = Settings(env="production", database_url="postgresql://x", temporal_address="t:7233")
    assert not prod.webhooks_may_reach_private
    assert Settings(
        env="production", database_url="postgresql://x", temporal_address="t:7233", webhook_allow_private=True
    ).webhooks_may_reach_private


def test_production_refuses_an_unsafe_sandbox() -> None:
    with pytest.raises(ValueError, match="SANDBOX_UNSAFE"):
        Settings(
            env="production", database_url="postgresql://x", temporal_address="t:7233", sandbox_unsafe=True
        )
