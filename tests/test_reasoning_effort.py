"""Issue 14 item 5: `reasoning_effort`, every value of the SDK's `ReasoningEffort`, on assistants
and runs through the official SDK; stored and returned; read into the turn's context from the
run's row; and rendered only into chat templates that take it (the real SmolLM2 tokenizer, with
its own template and with one that reads `reasoning_effort`)."""

from __future__ import annotations

import asyncio
import copy
import typing
from typing import Any

import openai
import pytest
from openai.types.shared.reasoning_effort import ReasoningEffort

from activities.llm.registry import LoadedModel
from activities.prompt import load_turn_context
from assistants.db.pool import open_pool
from tests.stackutil import ROOT, StackHandle

pytestmark = pytest.mark.timeout(300)
# Every value the SDK can send (its Optional[Literal[...]]), so a new one added there fails here.
VALUES: list[str] = [v for arg in typing.get_args(ReasoningEffort) for v in typing.get_args(arg)]


def test_the_sdk_values_are_the_ones_the_issue_names() -> None:
    assert set(VALUES) >= {"none", "minimal", "low", "medium", "high", "xhigh", "max"}


@pytest.mark.parametrize("effort", VALUES)
def test_assistant_stores_and_returns_every_value(
    client: openai.OpenAI, model_name: str, effort: str
) -> None:
    a = client.beta.assistants.create(model=model_name, reasoning_effort=effort)  # type: ignore[arg-type]
    assert a.model_extra is not None and a.model_extra["reasoning_effort"] == effort
    got = client.beta.assistants.retrieve(a.id)
    assert got.model_extra is not None and got.model_extra["reasoning_effort"] == effort
    client.beta.assistants.delete(a.id)


def test_update_and_unknown_value(client: openai.OpenAI, model_name: str) -> None:
    a = client.beta.assistants.create(model=model_name)
    assert (a.model_extra or {}).get("reasoning_effort") is None
    a = client.beta.assistants.update(a.id, reasoning_effort="xhigh")
    assert (a.model_extra or {})["reasoning_effort"] == "xhigh"
    a = client.beta.assistants.update(a.id, name="renamed")  # not sent: kept
    assert (a.model_extra or {})["reasoning_effort"] == "xhigh"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.update(a.id, reasoning_effort="extreme")  # type: ignore[arg-type]
    assert set(exc.value.response.json()["error"]) == {"message", "type", "param", "code"}
    client.beta.assistants.delete(a.id)


def _project_and_run(stack: StackHandle, run_id: str) -> tuple[str, dict[str, Any], Any]:
    async def go() -> tuple[str, dict[str, Any], Any]:
        pool = await open_pool(stack.database_url, max_size=1)
        try:
            async with pool.connection() as conn:
                row = await (
                    await conn.execute("SELECT project_id, data FROM runs WHERE id = %s", (run_id,))
                ).fetchone()
            assert row is not None
            ctx = await load_turn_context(pool, row["data"], row["project_id"], 0, 2048)
            return row["project_id"], row["data"], ctx
        finally:
            await pool.close()

    return asyncio.run(go())


def test_runs_store_it_inherit_it_and_the_turn_reads_it(
    client: openai.OpenAI, stack: StackHandle, model_name: str
) -> None:
    a = client.beta.assistants.create(model=model_name, reasoning_effort="none", temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=a.id, reasoning_effort="max", max_completion_tokens=4
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    assert (run.model_extra or {})["reasoning_effort"] == "max"
    assert (client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).model_extra or {})[
        "reasoning_effort"
    ] == "max"
    _, row, ctx = _project_and_run(stack, run.id)
    assert row["reasoning_effort"] == "max" and ctx.reasoning_effort == "max"
    inherited = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=a.id, max_completion_tokens=4
    )
    assert (inherited.model_extra or {})["reasoning_effort"] == "none"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=a.id, reasoning_effort="huge")  # type: ignore[arg-type]


# --- the chat template: the real SmolLM2 tokenizer --------------------------------------------

MODEL_DIR = ROOT / ".data" / "models" / "smollm2-135m-instruct"
EFFORT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if reasoning_effort is defined and reasoning_effort %}<|im_start|>system\nReasoning: "
    "{{ reasoning_effort }}<|im_end|>\n{% endif %}<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    if not (MODEL_DIR / ".prepared").exists():
        pytest.skip(f"{MODEL_DIR} is not prepared (`make setup`)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR))


def _model(tokenizer: Any) -> LoadedModel:
    import torch

    # Only the tokenizer is used by encode_chat: no weights are loaded for this test.
    return LoadedModel(
        name="t", path=str(MODEL_DIR), tokenizer=tokenizer, model=None, engine=None,  # type: ignore[arg-type]
        device=torch.device("cpu"), stop_token_ids=[],
    )  # fmt: skip


def test_a_template_that_takes_it_renders_it(tokenizer: Any) -> None:
    custom = copy.deepcopy(tokenizer)
    custom.chat_template = EFFORT_TEMPLATE
    model = _model(custom)
    assert model.takes_reasoning_effort
    msgs = [{"role": "user", "content": "hello"}]
    text = custom.decode(model.encode_chat(msgs, reasoning_effort="xhigh"))
    assert "Reasoning: xhigh" in text
    assert "Reasoning" not in custom.decode(model.encode_chat(msgs))


def test_a_template_that_does_not_take_it_is_unchanged(tokenizer: Any) -> None:
    model = _model(tokenizer)
    assert not model.takes_reasoning_effort  # SmolLM2's own template
    msgs = [{"role": "user", "content": "hello"}]
    assert model.encode_chat(msgs, reasoning_effort="high") == model.encode_chat(msgs)
