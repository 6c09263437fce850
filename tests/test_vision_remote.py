"""An image question answered through the OpenAI-compatible provider, on a REAL vLLM.

A second vLLM (`.vllm-venv`, scripts/setup_vllm.sh) serves tests/tiny_vlm.py's toy Idefics3
(SmolVLM's architecture) with RANDOM weights, built in this session: no vision weights can be
downloaded here. Its answers are meaningless text. What the test asserts proves the path instead:
the image, uploaded as a File, goes upstream as an `image_url` data URL, vLLM's processor and
vision tower read it (vLLM counts the image's tokens in `usage.prompt_tokens`), and greedy answers
depend on the pixels: the same image twice answers the same, another image differently.

vLLM's LLaVA cannot serve here: its llava.py imports pixtral, which needs torchvision, and no CPU
build of torchvision installs in .vllm-venv; idefics3.py does not, and transformers falls back to
the PIL image processor without torchvision.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests import vllm_server
from tests.requires import missing
from tests.stackutil import StackHandle, own_stack
from tests.test_vision import check_an_uploaded_image_reaches
from tests.tiny_vlm import IDEFICS3_IMAGE_SEQ_LEN, build_tiny_idefics3

pytestmark = pytest.mark.timeout(1200)

MODEL = "tiny-smolvlm-vllm"
CONTEXT = 512
# vLLM expands the template's one `<image>` into <fake_token_around_image><global-img>, the
# image's <image> tokens, and <fake_token_around_image> (one untiled 32x32 image): 7 tokens.
IMAGE_PROMPT_TOKENS = 1 + 1 + IDEFICS3_IMAGE_SEQ_LEN + 1


class VisionVllm(vllm_server.VllmServer):
    """The same server as the text provider tests, without their tool flags (the toy model has
    no tool template), a short context and at most two images a prompt."""

    def command(self) -> list[str]:
        return [
            str(vllm_server.VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--dtype", "float32",
            "--max-model-len", str(CONTEXT),
            "--limit-mm-per-prompt", json.dumps({"image": 2}),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**super().env(), "VLLM_CPU_KVCACHE_SPACE": "1"}


@pytest.fixture(scope="module")
def vision_stack() -> Iterator[StackHandle]:
    if not vllm_server.available():
        missing("vLLM is not installed (.vllm-venv): run scripts/setup_vllm.sh")
    folder = Path(tempfile.mkdtemp(prefix="tiny-smolvlm-"))
    folder.chmod(0o755)
    server = VisionVllm(
        build_tiny_idefics3(folder / "model"), MODEL, vllm_server.free_port(), folder / "vllm.log"
    )
    remote = {
        "provider": "openai",
        "base_url": server.base_url,
        "model": MODEL,
        "capabilities": {"vision": True, "tools": False, "json_schema": False, "context_length": CONTEXT},
    }
    env = {"ASSISTANTS_MODEL_PROVIDERS": json.dumps({MODEL: remote})}
    server.start()  # it starts (minutes) while the stack does
    try:
        with own_stack("assistants-vision-remote-", env=env) as handle:
            server.wait_ready(900)
            yield handle
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def client(vision_stack: StackHandle) -> openai.OpenAI:
    key = vision_stack.create_key("vision-remote")
    return openai.OpenAI(base_url=vision_stack.base_url, api_key=key, max_retries=0, timeout=120)


def test_an_image_question_through_the_openai_provider(client: openai.OpenAI) -> None:
    # vLLM counts the prompt: holding the image's tokens, the image reached its processor; the
    # greedy answers (meaningless text: random weights) depend on what its vision tower saw.
    check_an_uploaded_image_reaches(client, MODEL, IMAGE_PROMPT_TOKENS)
