"""API keys: created once, shown once, stored only as a sha256 hash. Each belongs to a project.

sha256 (not a slow KDF) is enough because keys are 256-bit random strings, not passwords.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass

import psycopg

from assistants.ids import new_id

_ALPHABET = string.ascii_letters + string.digits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_project(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute("SELECT id FROM projects WHERE name = %s", (name,)).fetchone()
    if row:
        return row[0]
    project_id = new_id("proj")
    conn.execute(
        "INSERT INTO projects (id, name, created_at) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
        (project_id, name, int(time.time())),
    )
    return conn.execute("SELECT id FROM projects WHERE name = %s", (name,)).fetchone()[0]  # type: ignore[index]


@dataclass
class CreatedKey:
    id: str
    project_id: str
    key: str


def create_key(conn: psycopg.Connection, project: str, name: str = "") -> CreatedKey:
    project_id = ensure_project(conn, project)
    key = "sk-" + "".join(secrets.choice(_ALPHABET) for _ in range(48))
    key_id = new_id("key")
    conn.execute(
        "INSERT INTO api_keys (id, project_id, name, key_hash, redacted, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, project_id, name, hash_key(key), key[:5] + "..." + key[-4:], int(time.time())),
    )
    return CreatedKey(id=key_id, project_id=project_id, key=key)


def list_keys(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT k.id, p.name, k.name, k.redacted, k.created_at, k.revoked_at FROM api_keys k JOIN projects p ON p.id = k.project_id"
        " ORDER BY k.created_at, k.id"
    ).fetchall()


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL", (int(time.time()), key_id)
    )
    return cur.rowcount > 0
