"""Temporal payloads encrypted at rest: a PayloadCodec (Temporal's documented approach) that seals
every payload a client or worker sends, so histories, memos and failures hold no user data in the
clear. Decoding passes through payloads without the encrypted encoding: histories recorded before
encryption (and the committed test histories) keep replaying.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from assistants.keyring import Keyring

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# HKDF purpose: the payload keys are never the webhook-secret keys.
PURPOSE = "assistants temporal payloads v1"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring.derived(PURPOSE)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            kid, sealed = self.keyring.seal(p.SerializeToString())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # recorded before encryption, or by a client without the codec
                continue
            kid = p.metadata.get(KEY_ID, b"").decode()
            out.append(Payload.FromString(self.keyring.open(kid, p.data)))
        return out


def data_converter(keyring: Keyring | None) -> DataConverter:
    if keyring is None:
        return DataConverter.default
    return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(keyring))
