"""Images in user messages, through the official SDK against a stack of its own.

The vision-language model here is tests/tiny_vlm.py: LLaVA's architecture at toy size with
RANDOM weights, built in this session (no vision weights can be downloaded here). Its answers
are meaningless text. What the tests assert proves the path instead: the image's bytes reach the
model through its processor and vision tower (the prompt grows by exactly the image's tokens;
greedy answers differ for different images and match for the same one), a data: URL works as
well as a File, and a model that takes no images refuses them with a clear `last_error`.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image

from tests.stackutil import StackHandle, free_port, own_stack
from tests.tiny_vlm import IMAGE_TOKENS, build_tiny_llava

pytestmark = pytest.mark.timeout(900)

VLM = "tiny-llava"
TEXT_ONLY = "smollm2-135m-instruct"
REMOTE_TEXT_ONLY = "remote-text-only"  # an OpenAI-compatible model without vision (never reached)
QUESTION = "What is in this image?"
# Random weights never write their end token: an answer runs to its budget, kept short here.
ANSWER_TOKENS = 16


def png(color: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def vision_stack() -> Iterator[StackHandle]:
    folder = Path(tempfile.mkdtemp(prefix="tiny-llava-"))
    folder.chmod(0o755)
    build_tiny_llava(folder / VLM)
    remote = {
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens: the check comes first
        "capabilities": {"vision": False},
    }
    env = {
        "ASSISTANTS_MODELS": f"{VLM}={folder / VLM}",
        "ASSISTANTS_MODEL_PROVIDERS": json.dumps({REMOTE_TEXT_ONLY: remote}),
    }
    try:
        with own_stack("assistants-vision-", env=env) as handle:
            yield handle
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def client(vision_stack: StackHandle) -> openai.OpenAI:
    key = vision_stack.create_key("vision")
    return openai.OpenAI(base_url=vision_stack.base_url, api_key=key, max_retries=0, timeout=120)


def ask(client: openai.OpenAI, model: str, content: Any) -> Any:
    assistant = client.beta.assistants.create(model=model, instructions="Describe images.", temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_completion_tokens=ANSWER_TOKENS,
        poll_interval_ms=200,
    )


def cut(run: Any) -> None:
    """The run answered until its budget ran out (as a model with random weights does)."""
    assert run.status == "incomplete", run.last_error
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == ANSWER_TOKENS


def answer(client: openai.OpenAI, run: Any) -> str:
    cut(run)
    messages = client.beta.threads.messages.list(thread_id=run.thread_id, order="desc", limit=1)
    return "".join(p.text.value for p in messages.data[0].content if p.type == "text")


def image_file(client: openai.OpenAI, data: bytes, detail: str = "auto") -> dict[str, Any]:
    f = client.files.create(file=("image.png", data), purpose="vision")
    return {"type": "image_file", "image_file": {"file_id": f.id, "detail": detail}}


def text(value: str = QUESTION) -> dict[str, Any]:
    return {"type": "text", "text": value}


def check_an_uploaded_image_reaches(client: openai.OpenAI, model: str, image_tokens: int) -> None:
    """An image File in a user message reaches `model`: the prompt (as the model's side counts
    it) holds exactly `image_tokens` more than the same text alone, and greedy answers depend on
    the pixels: the same image twice answers the same, another image differently."""
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    text_only = ask(client, model, QUESTION)
    cut(text_only)
    first = ask(client, model, [image_file(client, red), text()])
    again = ask(client, model, [image_file(client, red), text()])
    other = ask(client, model, [image_file(client, blue), text()])
    assert first.usage.prompt_tokens == text_only.usage.prompt_tokens + image_tokens
    assert answer(client, first) == answer(client, again)
    assert answer(client, first) != answer(client, other)


def test_an_image_file_reaches_the_vision_model(client: openai.OpenAI) -> None:
    # The image part renders as the model's image token, expanded by the processor to one token
    # per patch, and no more.
    check_an_uploaded_image_reaches(client, VLM, IMAGE_TOKENS)


def test_an_image_url_data_url_works_too(client: openai.OpenAI) -> None:
    red = png((255, 0, 0))
    url = "data:image/png;base64," + base64.b64encode(red).decode()
    by_url = ask(client, VLM, [{"type": "image_url", "image_url": {"url": url, "detail": "low"}}, text()])
    by_file = ask(client, VLM, [image_file(client, red), text()])
    assert by_url.usage.prompt_tokens == by_file.usage.prompt_tokens
    assert answer(client, by_url) == answer(client, by_file)


def test_two_images_in_one_message(client: openai.OpenAI) -> None:
    one = ask(client, VLM, [image_file(client, png((0, 255, 0))), text()])
    two = ask(client, VLM, [image_file(client, png((0, 255, 0))), image_file(client, png((9, 9, 9))), text()])
    assert two.usage.prompt_tokens == one.usage.prompt_tokens + IMAGE_TOKENS
    assert answer(client, two)


def failure(run: Any) -> str:
    assert run.status == "failed", run.status
    assert run.last_error is not None
    assert run.last_error.code == "invalid_prompt"  # the request's fault, not the server's
    return str(run.last_error.message)


@pytest.mark.parametrize("model", [TEXT_ONLY, REMOTE_TEXT_ONLY])
def test_a_text_only_model_refuses_images(client: openai.OpenAI, model: str) -> None:
    run = ask(client, model, [image_file(client, png((255, 0, 0))), text()])
    message = failure(run)
    assert f"model {model!r} does not take images" in message
    # Failed before generating anything: no answer was written.
    assert run.usage is None or run.usage.completion_tokens == 0
    messages = client.beta.threads.messages.list(thread_id=run.thread_id)
    assert [m.role for m in messages.data] == ["user"]


def test_an_http_image_url_is_refused_not_fetched(client: openai.OpenAI) -> None:
    part = {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}}
    assert "does not fetch image URLs" in failure(ask(client, VLM, [part, text()]))


def test_a_file_that_is_not_an_image_is_refused(client: openai.OpenAI) -> None:
    f = client.files.create(file=("notes.png", b"plain text, not a picture"), purpose="vision")
    part = {"type": "image_file", "image_file": {"file_id": f.id}}
    assert "is not a PNG, JPEG, WEBP or GIF image" in failure(ask(client, VLM, [part, text()]))
