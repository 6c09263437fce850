"""The keys that encrypt data at rest: Temporal payloads (assistants/codec.py) and webhook signing
secrets (assistants/webhooks.py). AES-256-GCM with a fresh 96-bit nonce per message.

The primary key (``ASSISTANTS_PAYLOAD_KEY``, base64 of 32 bytes) encrypts; it and the retired keys
(``ASSISTANTS_PAYLOAD_OLD_KEYS``, comma separated) decrypt. Every ciphertext names its key by id
(the first 8 hex digits of SHA-256 of the key), so keys rotate without re-encrypting old data.
With neither setting, the key file of the data dir is used: the embedded stack (``assistants up``)
writes one there on first start, so it encrypts by default.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from assistants.settings import Settings

KEY_FILE = "payload.key"
OPERATOR_TOKEN_FILE = "operator.token"
_NONCE = 12


class InvalidKey(ValueError):
    pass


class UnknownKey(ValueError):
    """A ciphertext names a key this process does not hold."""


def _parse_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(f"{where} is not base64") from None
    if len(key) != 32:
        raise InvalidKey(f"{where} must be 32 bytes (base64), got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def new_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _derive(key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(key)


@dataclass(frozen=True)
class Keyring:
    primary_id: str
    keys: Mapping[str, bytes]  # key id -> key; the primary's and the retired ones

    @classmethod
    def of(cls, primary: bytes, retired: tuple[bytes, ...] = ()) -> Keyring:
        return cls(key_id(primary), {key_id(k): k for k in (*retired, primary)})

    def derived(self, purpose: str) -> Keyring:
        """The same keys (and ids) turned to another use by HKDF, so no two uses share a key."""
        return Keyring(self.primary_id, {kid: _derive(k, purpose) for kid, k in self.keys.items()})

    def seal(self, plaintext: bytes, aad: bytes = b"") -> tuple[str, bytes]:
        """(key id, nonce + ciphertext)."""
        nonce = os.urandom(_NONCE)
        return self.primary_id, nonce + AESGCM(self.keys[self.primary_id]).encrypt(nonce, plaintext, aad)

    def open(self, kid: str, sealed: bytes, aad: bytes = b"") -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise UnknownKey(f"no key with id {kid!r} (set ASSISTANTS_PAYLOAD_OLD_KEYS)")
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)


def load_keyring(settings: Settings) -> Keyring | None:
    """The configured keys, else the data dir's key file, else None (nothing is encrypted)."""
    retired = tuple(
        _parse_key(k, "ASSISTANTS_PAYLOAD_OLD_KEYS")
        for k in settings.payload_old_keys.split(",")
        if k.strip()
    )
    if settings.payload_key is not None:
        return Keyring.of(
            _parse_key(settings.payload_key.get_secret_value(), "ASSISTANTS_PAYLOAD_KEY"), retired
        )
    path = settings.resolved_data_dir / KEY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return Keyring.of(_parse_key(text, str(path)), retired)


def operator_token(settings: Settings) -> str | None:
    """The operator credential (codec endpoint): the setting, else the data dir's token file."""
    if settings.operator_token is not None:
        return settings.operator_token.get_secret_value() or None
    try:
        return (settings.resolved_data_dir / OPERATOR_TOKEN_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_local_secrets(settings: Settings) -> None:
    """For the embedded stack: create the data dir's key and operator token files (0600) when the
    settings do not provide them. Existing files are kept (they decrypt what is already stored)."""
    data_dir = settings.resolved_data_dir
    wanted: list[tuple[Path, str]] = []
    if settings.payload_key is None:
        wanted.append((data_dir / KEY_FILE, new_key_text()))
    if settings.operator_token is None:
        wanted.append((data_dir / OPERATOR_TOKEN_FILE, secrets.token_urlsafe(32)))
    for path, value in wanted:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
