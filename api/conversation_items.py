"""Thread messages as Conversations API items (`conversation.item` of type `message`): a thread
and a conversation are one row, so either API reads what the other wrote."""

from __future__ import annotations

from typing import Any


def _part(part: dict[str, Any], role: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        text = part["text"]["value"]
        if role == "assistant":
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {"type": "input_text", "text": text}
    if kind == "image_url":
        ref = part.get("image_url") or {}
        return {
            "type": "input_image",
            "image_url": ref.get("url"),
            "file_id": None,
            "detail": ref.get("detail") or "auto",
        }
    if kind == "image_file":
        ref = part.get("image_file") or {}
        return {
            "type": "input_image",
            "image_url": None,
            "file_id": ref.get("file_id"),
            "detail": ref.get("detail") or "auto",
        }
    return {"type": "input_text", "text": ""}


def message_item(msg: dict[str, Any]) -> dict[str, Any]:
    role = msg.get("role") or "user"
    return {
        "type": "message",
        "id": msg["id"],
        "status": msg.get("status") or "completed",
        "role": role,
        "content": [_part(p, role) for p in msg.get("content") or []],
    }


def conversation_object(thread: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": thread["id"],
        "object": "conversation",
        "created_at": thread["created_at"],
        "metadata": thread.get("metadata") or {},
    }
