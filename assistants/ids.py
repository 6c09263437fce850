"""Object ids in OpenAI's shape (`asst_...`), random or derived.

Derived ids make activities idempotent: a retried activity computes the same id from the run id
and step index, so an insert ... on conflict do nothing never writes twice.
"""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_LEN = 24


def new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(_LEN))


def new_file_id() -> str:
    return "file-" + new_id("f")[2:]  # OpenAI spells file ids with a hyphen


def derived_file_id(*parts: object) -> str:
    """A File id derived from `parts` (a retried activity gets the same one), hyphen spelled."""
    return "file-" + derived_id("f", *parts)[2:]


def derived_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    num = int.from_bytes(digest, "big")
    chars = []
    for _ in range(_LEN):
        num, rem = divmod(num, len(_ALPHABET))
        chars.append(_ALPHABET[rem])
    return f"{prefix}_" + "".join(chars)
