"""Images in user messages, made ready for a model: every image part becomes an `image_url` part
holding a `data:` URL, the form both the in-process processor (activities/llm/vision.py) and an
OpenAI-compatible provider take.

`image_file` parts name Files of the run's project, read from the files store. `image_url` parts
must already be `data:` URLs: the server never fetches a URL a user gave it, as that would let
any API key make the inference worker reach hosts on its own network (the same reason webhooks
have their network guard). Upload the image as a File (purpose `vision`) instead.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

from assistants.files_store import FilesStore
from assistants.payloads import ChatMessage

# OpenAI's documented limit for one image in a message.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class ImageError(ValueError):
    """An image a run cannot use (missing, not an image, too large, a URL to fetch)."""


def has_images(messages: list[ChatMessage]) -> bool:
    return any(m.parts for m in messages)


def no_images_message(model: str) -> str:
    return (
        f"model {model!r} does not take images, and this thread has images in its messages: "
        "use a vision model or remove the images"
    )


def image_mime(data: bytes) -> str | None:
    for magic, mime in _MAGIC.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def data_url(data: bytes, what: str) -> str:
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{what} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    mime = image_mime(data)
    if mime is None:
        raise ImageError(f"{what} is not a PNG, JPEG, WEBP or GIF image")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def data_url_bytes(url: str) -> bytes:
    """The bytes of a `data:<mime>;base64,<payload>` URL."""
    head, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        raise ImageError("an image_url must be a base64 data: URL (data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("an image_url data: URL does not hold valid base64") from None


async def _part(part: dict[str, Any], files: FilesStore, project_id: str) -> dict[str, Any]:
    if part["type"] == "image_file":
        ref = part["image_file"]
        try:
            _, data = await files.get(ref["file_id"], project_id=project_id)
        except FileNotFoundError:
            raise ImageError(f"image file {ref['file_id']} no longer exists") from None
        url = data_url(data, f"image file {ref['file_id']}")
        return {"type": "image_url", "image_url": {"url": url, "detail": ref.get("detail") or "auto"}}
    if part["type"] == "image_url":
        ref = part["image_url"]
        if not str(ref["url"]).startswith("data:"):
            raise ImageError(
                "image_url parts must be data: URLs: this server does not fetch image URLs; "
                "upload the image as a file (purpose vision) and use an image_file part"
            )
        data_url(data_url_bytes(ref["url"]), "an image_url")  # checked: size, and really an image
        return {"type": "image_url", "image_url": {"url": ref["url"], "detail": ref.get("detail") or "auto"}}
    return part


async def with_image_data(
    messages: list[ChatMessage], files: FilesStore, project_id: str
) -> list[ChatMessage]:
    """`messages` with every image part as an `image_url` part holding a data: URL."""
    out = []
    for m in messages:
        if m.parts:
            m = dataclasses.replace(m, parts=[await _part(p, files, project_id) for p in m.parts])
        out.append(m)
    return out
