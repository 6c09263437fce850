"""The inference engine against the real default model (SmolLM2-135M, fp32 on CPU).

Preparing the model takes ~20-50 s, so the prepared folder is cached in the repo's .data dir
(or $ASSISTANTS_TEST_MODEL_CACHE) and linked into each test data dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from activities.inference import _text_constraint
from activities.llm.detok import IncrementalDetokenizer
from activities.llm.engine import GenerationRequest, GenerationResult
from activities.llm.prepare import default_model_dir, is_prepared, prepare_default_model
from activities.llm.registry import LoadedModel, ModelRegistry
from activities.llm.toolcalls import OPEN_TAG
from assistants.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Hi",
    "Write a long poem about the sea, the sky and the birds that fly between them.",
    "What is 2+2?",
    "Tell me a joke about programmers.",
]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    cache = Settings(data_dir=Path(os.environ.get("ASSISTANTS_TEST_MODEL_CACHE", REPO / ".data")))
    prepared = prepare_default_model(cache)  # no-op when already there
    data_dir = tmp_path_factory.mktemp("llm-data")
    s = Settings(data_dir=data_dir, device="cpu", dtype="float32", max_batch_size=8)
    default_model_dir(s).parent.mkdir(parents=True)
    default_model_dir(s).symlink_to(prepared, target_is_directory=True)
    return s


@pytest.fixture(scope="module")
def llm(settings: Settings) -> Iterator[LoadedModel]:
    registry = ModelRegistry(settings)
    loaded = registry.get()
    yield loaded
    registry.close()


def chat(llm: LoadedModel, text: str) -> list[int]:
    return llm.encode_chat([{"role": "user", "content": text}])


def greedy(ids: list[int], n: int = 16, **kw) -> GenerationRequest:
    return GenerationRequest(ids, max_new_tokens=n, **kw)


def test_import_does_no_work() -> None:
    code = "import sys, activities.llm; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_prepare_is_idempotent(settings: Settings) -> None:
    t = time.perf_counter()
    path = prepare_default_model(settings)
    assert time.perf_counter() - t < 2
    assert path == default_model_dir(settings) and is_prepared(path)
    assert prepare_default_model(settings) == path


def test_registry_loads_once(settings: Settings, llm: LoadedModel) -> None:
    registry = ModelRegistry(settings)
    assert settings.default_model in registry.names()
    assert llm.count_tokens("hello world") > 0
    # The default template adds its own system prompt when none is given.
    assert "SmolLM" in llm.decode(chat(llm, "hello"))


async def test_engine_greedy_equals_hf_generate(llm: LoadedModel) -> None:
    import torch

    ids = chat(llm, PROMPTS[1])
    with torch.inference_mode():
        out = llm.model.generate(torch.tensor([ids]), max_new_tokens=16, min_new_tokens=16, do_sample=False)
    result = await llm.engine.generate(greedy(ids, 16, stop_token_ids=()))
    assert result.token_ids == out[0, len(ids) :].tolist()


async def test_batched_greedy_equals_alone(llm: LoadedModel) -> None:
    prompts = [chat(llm, p) for p in PROMPTS]
    alone = [await llm.engine.generate(greedy(p)) for p in prompts]
    together = await asyncio.gather(*(llm.engine.generate(greedy(p)) for p in prompts))

    async def late(ids: list[int], delay: float):
        await asyncio.sleep(delay)
        return await llm.engine.generate(greedy(ids))

    # Requests joining a running batch at different steps (their caches merged mid-flight).
    staggered = await asyncio.gather(*(late(p, 0.15 * i) for i, p in enumerate(prompts)))
    # fp32 on CPU: padding is masked exactly and position ids are explicit, so the batch
    # changes only floating-point summation order; greedy outputs match token for token.
    for a, b, c in zip(alone, together, staggered, strict=True):
        assert b.token_ids == a.token_ids
        assert c.token_ids == a.token_ids
        assert b.text == a.text


async def test_cancel_mid_batch_leaves_others_unchanged(llm: LoadedModel) -> None:
    others = [chat(llm, p) for p in PROMPTS[1:3]]
    expected = [await llm.engine.generate(greedy(p, 20)) for p in others]
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def on_delta(_: str) -> None:
        loop.call_soon_threadsafe(started.set)

    victim = asyncio.create_task(llm.engine.generate(greedy(chat(llm, PROMPTS[3]), 200), on_delta))
    rest = [asyncio.create_task(llm.engine.generate(greedy(p, 20))) for p in others]
    await started.wait()
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    results = await asyncio.gather(*rest)
    assert [r.token_ids for r in results] == [e.token_ids for e in expected]
    for _ in range(50):  # the row leaves at the next step boundary
        if llm.engine.stats()["running"] == 0:
            break
        await asyncio.sleep(0.05)
    assert llm.engine.stats() == {"running": 0, "waiting": 0, "max_batch_size": 8, "kv_cache_bytes": 0}


async def test_stream_deltas_concatenate_to_text(llm: LoadedModel) -> None:
    deltas: list[str] = []
    ids = chat(llm, "Say 'café crème' and then write three emoji.")
    result = await llm.engine.generate(greedy(ids, 40), deltas.append)
    assert result.text and "".join(deltas) == result.text
    # Whatever the model emits, streaming never adds a replacement char the final text lacks.
    assert result.text == llm.tokenizer.decode(result.token_ids, skip_special_tokens=True)
    assert sum(d.count("\ufffd") for d in deltas) == result.text.count("\ufffd")
    assert result.timings.first_token_s is not None and result.timings.total_s >= result.timings.first_token_s


def test_detokenizer_never_splits_characters(llm: LoadedModel) -> None:
    text = "naïve café 👋🏽 日本語のテキスト — done"
    detok = IncrementalDetokenizer(llm.tokenizer)
    pieces = [detok.push(t) for t in llm.tokenizer.encode(text, add_special_tokens=False)]
    pieces.append(detok.finish())
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == text == detok.text


async def test_max_new_tokens_finishes_with_length(llm: LoadedModel) -> None:
    result = await llm.engine.generate(
        greedy(chat(llm, "Count from one to one hundred."), 3, stop_token_ids=())
    )
    assert result.finish_reason == "length"
    assert result.completion_tokens == len(result.token_ids) == 3
    assert result.prompt_tokens == len(chat(llm, "Count from one to one hundred."))


async def test_stop_token_finishes_with_stop(llm: LoadedModel) -> None:
    result = await llm.engine.generate(greedy(chat(llm, "What is the capital of France?"), 64))
    assert result.finish_reason == "stop"
    assert "Paris" in result.text
    assert result.completion_tokens == len(result.token_ids) + 1  # the stop token was computed


async def test_json_schema_constraint(llm: LoadedModel) -> None:
    ids = chat(llm, "What's the weather in Paris? Call get_weather.")
    constrained = greedy(ids, 60, constraint=llm.json_schema_constraint(WEATHER_SCHEMA))
    # Alongside an unconstrained request: masks are per row.
    result, free = await asyncio.gather(llm.engine.generate(constrained), llm.engine.generate(greedy(ids, 8)))
    assert result.finish_reason == "stop"
    jsonschema.validate(json.loads(result.text), WEATHER_SCHEMA)
    assert not free.text.lstrip().startswith("{")


async def test_json_object_response_format_gives_an_object(llm: LoadedModel) -> None:
    # The constraint inference builds for response_format={"type": "json_object"}.
    constraint = await _text_constraint(llm, {"type": "json_object"}, [])
    ids = chat(llm, "Give me a JSON object with a cat's name and age.")
    result = await llm.engine.generate(greedy(ids, 60, constraint=constraint))
    assert result.finish_reason == "stop", result.text
    assert set(json.loads(result.text)) == {"name", "age"}, result.text


async def test_forced_call_name_is_one_of_the_tools(llm: LoadedModel) -> None:
    # How inference picks the name of a forced call among several tools: an enum after the open tag.
    names = ["get_time", "get_weather"]
    ids = chat(llm, "What's the weather in Paris?") + llm.encode(OPEN_TAG + '{"name": ')
    constraint = llm.json_schema_constraint({"type": "string", "enum": names})
    result = await llm.engine.generate(greedy(ids, 32, constraint=constraint))
    assert result.finish_reason == "stop" and json.loads(result.text) in names, result.text


async def test_seeded_sampling_is_per_request(llm: LoadedModel) -> None:
    ids = chat(llm, "Write one sentence about dogs.")
    req = lambda seed: GenerationRequest(ids, max_new_tokens=12, temperature=0.9, top_p=0.9, seed=seed)  # noqa: E731
    a, b, c = await asyncio.gather(*(llm.engine.generate(req(s)) for s in (7, 7, 8)))
    assert a.token_ids == b.token_ids
    assert len({tuple(a.token_ids), tuple(c.token_ids)}) == 2 or a.finish_reason == "stop"


async def test_failure_in_one_row_fails_only_that_request(llm: LoadedModel) -> None:
    class Broken:
        def mask_logits(self, logits):
            raise RuntimeError("grammar exploded")

        def accept(self, token_id):
            return True

        def is_terminated(self):
            return False

    ids = chat(llm, PROMPTS[2])
    expected = await llm.engine.generate(greedy(ids, 8))
    bad = llm.engine.generate(greedy(ids, 8, constraint=Broken))
    ok = llm.engine.generate(greedy(ids, 8))
    bad_result, ok_result = await asyncio.gather(bad, ok, return_exceptions=True)
    assert isinstance(bad_result, RuntimeError) and "exploded" in str(bad_result)
    assert isinstance(ok_result, GenerationResult) and ok_result.token_ids == expected.token_ids

    def raising_delta(_: str) -> None:
        raise ValueError("consumer gone")

    with pytest.raises(ValueError):
        await llm.engine.generate(greedy(ids, 8), raising_delta)
    assert (await llm.engine.generate(greedy(ids, 8))).token_ids == expected.token_ids
