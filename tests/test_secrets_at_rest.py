"""Secrets at rest: webhook signing secrets are sealed in Postgres (yet deliveries still verify,
and rows stored in plaintext before keep working and get sealed), and the Compose file publishes
no Temporal or database port to the network and runs the app under a least-privilege role."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import openai
import psycopg
import pytest
import yaml

from assistants.db.migrate import apply_migrations
from assistants.webhooks import SEALED_PREFIX, open_secret, verify
from tests.stackutil import StackHandle
from tests.test_webhooks import Receiver

COMPOSE = Path(__file__).resolve().parents[1] / "infra" / "compose" / "docker-compose.yml"


def _stored_secret(stack: StackHandle, webhook_id: str) -> str:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT secret FROM webhooks WHERE id = %s", (webhook_id,)).fetchone()
    assert row is not None
    return str(row[0])


def _one_event(
    client: openai.OpenAI, assistant: Any, receiver: Receiver, n: int
) -> tuple[dict[str, str], bytes]:
    client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Say hi."}]},
        max_completion_tokens=1,
        poll_interval_ms=200,
    )
    deadline = time.monotonic() + 60
    while len(receiver.events()) < n:
        assert time.monotonic() < deadline, "no delivery within 60s"
        time.sleep(0.2)
    events = list(receiver.events().values())
    return events[-1]


def test_webhook_secret_is_sealed_in_postgres_and_still_signs(
    client: openai.OpenAI, assistant: Any, stack: StackHandle
) -> None:
    receiver = Receiver(fail_first=0)
    hook = client.webhooks.create(url=receiver.url, name="sealed", event_types=["thread.run.incomplete"])  # type: ignore[list-item]
    try:
        stored = _stored_secret(stack, hook.id)
        secret = hook.signing_secret
        assert secret.startswith("whsec_")
        assert stored.startswith(SEALED_PREFIX)
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
        headers, body = _one_event(client, assistant, receiver, 1)
        verify(secret, headers, body)
        client.webhooks.verify_signature(body, headers, secret=secret)

        # A row stored in plaintext (before sealing) still signs: it is read as it is.
        with psycopg.connect(stack.database_url) as conn:
            conn.execute("UPDATE webhooks SET secret = %s WHERE id = %s", (secret, hook.id))
        headers, body = _one_event(client, assistant, receiver, 2)
        verify(secret, headers, body)
    finally:
        client.webhooks.delete(hook.id)
        receiver.close()


def test_rotated_secret_is_sealed_too(client: openai.OpenAI, stack: StackHandle) -> None:
    hook = client.webhooks.create(
        url="https://example.com/rotate", name="rotate", event_types=["thread.run.completed"]
    )  # type: ignore[list-item]
    try:
        rotated = client.post(f"/webhooks/{hook.id}/rotate_secret", cast_to=dict)
        stored = _stored_secret(stack, hook.id)
        assert stored.startswith(SEALED_PREFIX) and rotated["signing_secret"] not in stored  # type: ignore[index]
    finally:
        client.webhooks.delete(hook.id)


def test_plaintext_rows_are_sealed_at_api_start(client: openai.OpenAI, stack: StackHandle) -> None:
    """What the API runs at start (api/app.py) on a row stored before sealing existed."""
    from api.routers.webhooks import seal_stored_secrets
    from assistants.db.pool import open_pool
    from assistants.keyring import load_keyring

    hook = client.webhooks.create(
        url="https://example.com/legacy", name="legacy", event_types=["thread.run.completed"]
    )  # type: ignore[list-item]
    try:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute("UPDATE webhooks SET secret = %s WHERE id = %s", (hook.signing_secret, hook.id))

        async def seal() -> int:
            pool = await open_pool(stack.database_url, max_size=2)
            try:
                return await seal_stored_secrets(pool, load_keyring(stack.settings()))
            finally:
                await pool.close()

        assert asyncio.run(seal()) >= 1
        stored = _stored_secret(stack, hook.id)
        assert stored.startswith(SEALED_PREFIX) and hook.signing_secret not in stored
        assert open_secret(load_keyring(stack.settings()), hook.id, stored) == hook.signing_secret
        assert asyncio.run(seal()) == 0  # idempotent
    finally:
        client.webhooks.delete(hook.id)


def test_a_dml_only_role_starts_on_a_current_schema_and_cannot_change_it(stack: StackHandle) -> None:
    """The manifests' app role (infra/compose/postgres-init): rows only. Starting a process runs
    apply_migrations; with the schema current it must need no DDL."""
    role, password = "assistants_app_test", "app-test-pw"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}" if _role_exists(conn, role) else "SELECT 1")
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        info = psycopg.conninfo.conninfo_to_dict(stack.database_url)
        app_url = psycopg.conninfo.make_conninfo(stack.database_url, user=role, password=password)
        assert info["user"] != role
        assert apply_migrations(app_url) == []  # no pending migration: no DDL, no error
        with psycopg.connect(app_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM webhooks").fetchone() is not None
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE app_may_not_create (x int)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE webhooks")
    finally:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


# --- manifests ----------------------------------------------------------------------------------


def _published(service: dict[str, Any]) -> list[str]:
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append(f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target')}")
        else:
            out.append(str(port))
    return out


def test_compose_publishes_no_temporal_or_database_port_to_the_network() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("postgres", "temporal", "temporal-ui"):
        for port in _published(services[name]):
            # "8080:8080" and "0.0.0.0:8080:8080" listen on every interface; only loopback is allowed.
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_app_connects_as_a_least_privilege_role() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] != ["assistants"]:
            continue
        url = str((service.get("environment") or {})["DATABASE_URL"])
        role = url.split("://", 1)[1].split(":", 1)[0]
        if command[1] == "migrate":
            assert role == owner, name  # the one service that changes the schema
        else:
            assert role != owner, f"{name} connects as the database owner {owner}"
    assert "migrate" in services and any(
        s.get("depends_on", {}).get("migrate")
        for s in services.values()
        if isinstance(s.get("depends_on"), dict)
    )
    json.dumps(compose)  # parses as plain data
