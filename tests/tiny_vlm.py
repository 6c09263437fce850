"""A tiny vision-language model with RANDOM weights, built from a config for the image tests
(tests/test_vision.py): no vision weights can be downloaded here, so the test suite makes one.

LLaVA's architecture (a CLIP vision tower, a projector, a Llama language model) at toy sizes, with
the bundled SmolLM2 tokenizer plus an `<image>` token and a ChatML template that renders image
parts, saved as a plain HF folder with its processor (`LlavaProcessor` + `CLIPImageProcessor`) so
`AutoProcessor` / `AutoModelForImageTextToText` load it like any hub model. Its answers are
meaningless text; what it proves is the path: image bytes -> processor -> pixel_values -> the
vision tower -> image tokens in the prompt -> generation.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SIZE, PATCH_SIZE = 32, 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # per image: the patches (CLIP's CLS is dropped)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message.role }}\n"
    "{%- if message.content is string -%}{{ message.content }}"
    "{%- else -%}{%- for part in message.content -%}"
    "{%- if part.type == 'image' -%}<image>"
    "{%- elif part.type == 'text' -%}{{ part.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def _tokenizer(special_tokens: list[str]):  # type: ignore[no-untyped-def]
    """The bundled SmolLM2 tokenizer plus a model's image tokens and the image-part template."""
    from transformers import AutoTokenizer

    from activities.llm.prepare import bundled_gguf_path

    gguf = bundled_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _text_config(tokenizer, hidden: int, heads: int, kv_heads: int):  # type: ignore[no-untyped-def]
    """A 2-layer Llama over `tokenizer`, ending turns at `<|im_end|>`."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def _randomize(model) -> None:  # type: ignore[no-untyped-def]
    """At the usual init scale (0.02) a toy model's logits barely move with the image and every
    image gets the same greedy answer; larger random weights make the image visibly matter."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.3 if param.dim() > 1 else 0.1)


def _save(model, processor, out: Path) -> Path:  # type: ignore[no-untyped-def]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    out.chmod(0o755)  # the stack's workers may run as another user
    return out


def build_tiny_llava(out: Path, seed: int = 0) -> Path:
    """Write the model folder to `out` (random weights, seeded) and return it."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _tokenizer(["<image>"])
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=_text_config(tokenizer, hidden=64, heads=4, kv_heads=2),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    _randomize(model)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        ),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    return _save(model, processor, out)


# Idefics3 (SmolVLM's architecture) for the REMOTE image test (tests/test_vision_remote.py): vLLM's
# llava.py imports pixtral, which needs torchvision (no CPU wheel of it here), while vLLM's
# idefics3.py does not, and transformers falls back to the PIL image processor without it.
IDEFICS3_IMAGE_SIZE, IDEFICS3_PATCH_SIZE, IDEFICS3_SCALE = 32, 8, 2
# <image> tokens per image: the patches, pixel-shuffled by the connector (scale_factor**2 -> 1).
IDEFICS3_IMAGE_SEQ_LEN = (IDEFICS3_IMAGE_SIZE // IDEFICS3_PATCH_SIZE) ** 2 // IDEFICS3_SCALE**2


def build_tiny_idefics3(out: Path, seed: int = 0) -> Path:
    """A toy `Idefics3ForConditionalGeneration` (random weights, seeded) saved to `out`: a SigLIP-
    style vision tower on 32x32 images, the pixel-shuffle connector, a tiny Llama, the bundled
    SmolLM2 tokenizer with SmolVLM's image tokens, and `Idefics3Processor` with the PIL image
    processor without tiling (one 32x32 image per picture: 4 `<image>` tokens in the prompt)."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    image_tokens = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    image_tokens += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = _tokenizer(image_tokens)
    vision = Idefics3VisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IDEFICS3_IMAGE_SIZE,
        patch_size=IDEFICS3_PATCH_SIZE,
    )
    config = Idefics3Config(
        vision_config=vision,
        # head_dim 64: vLLM's CPU attention kernels take no smaller heads (16 fails at the first step)
        text_config=_text_config(tokenizer, hidden=128, heads=2, kv_heads=1),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=IDEFICS3_SCALE,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    _randomize(model)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": IDEFICS3_IMAGE_SIZE},
        max_image_size={"longest_edge": IDEFICS3_IMAGE_SIZE},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IDEFICS3_IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )
    return _save(model, processor, out)
