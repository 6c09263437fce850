"""Vision-language models in process: which models take images, and prompts with images.

A model takes images when its config has a vision tower (`vision_config`: LLaVA, Idefics3 /
SmolVLM, Qwen2-VL, Gemma 3...) and its folder has a processor; it then loads through
`AutoProcessor` and `AutoModelForImageTextToText`. A prompt with images is rendered by the
processor's chat template (image parts in user turns) and encoded by the processor, whose
tensors (`pixel_values`...) go with the prompt ids into the engine's prefill.

`detail` (low / high / auto) is not used in process: the processor sizes every image as the
model was trained to see it (LLaVA's vision tower has one fixed resolution). Remote providers
receive it as it was given.
"""

from __future__ import annotations

import io
from typing import Any

from activities.images import ImageError, data_url_bytes

# A decoded image may hold at most this many pixels (PIL's own bomb check warns at ~89M).
MAX_IMAGE_PIXELS = 50_000_000


def takes_images(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


class ImagePrompt(list[int]):
    """Prompt ids whose image tokens need the processor's tensors at prefill. Appending ids (a
    forced tool call's prefix) keeps them: the images are still in the prompt."""

    def __init__(self, ids: list[int], prefill_inputs: dict[str, Any]) -> None:
        super().__init__(ids)
        self.prefill_inputs = prefill_inputs

    def __add__(self, other: list[int]) -> ImagePrompt:  # type: ignore[override]
        return ImagePrompt([*self, *other], self.prefill_inputs)


def has_image_parts(messages: list[dict[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) for m in messages)


def decode_image(url: str) -> Any:
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data_url_bytes(url)))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ImageError(f"an image of {image.width}x{image.height} pixels is too large")
        return image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"an image could not be decoded: {exc}") from None


def template_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Chat Completions messages -> the processor template's form ({"type": "image"} parts), and
    the decoded images in the order the template renders them."""
    images: list[Any] = []
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if p["type"] == "image_url":
                    images.append(decode_image(p["image_url"]["url"]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": p["text"]})
            m = {**m, "content": parts}
        out.append(m)
    return out, images


def encode(processor: Any, messages: list[dict[str, Any]], **template: Any) -> ImagePrompt:
    """Render with the processor's chat template and encode text and images together."""
    rendered, images = template_messages(messages)
    text = processor.apply_chat_template(rendered, tokenize=False, **template)
    enc = processor(text=text, images=images or None, add_special_tokens=False, return_tensors="pt")
    extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    return ImagePrompt(enc["input_ids"][0].tolist(), extra)
