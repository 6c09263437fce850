"""Built-in tools through runs and the operator sandbox command, against the real stack:
code_interpreter steps, files in and out of the sandbox, file_search with citations, and v1's
`retrieval` + `file_ids` mapped onto vector stores."""

from __future__ import annotations

import json
import subprocess

import httpx
import openai
import pytest

from tests.stackutil import ASSISTANTS, StackHandle
from tests.tool_requests import forced_code_run

pytestmark = pytest.mark.timeout(300)

RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def test_forced_code_interpreter_records_input_and_outputs(client: openai.OpenAI, model_name: str) -> None:
    run = forced_code_run(client, model_name)
    # The bundled 135M model writes poor code; what is checked is that it ran and was recorded,
    # and that the short greedy answer after it fits the budget.
    assert run.status == "completed", run.last_error or run.incomplete_details
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id, order="asc").data
    assert steps[0].type == "tool_calls" and steps[0].status == "completed"
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "code_interpreter" and isinstance(call.code_interpreter.input, str)
    assert call.code_interpreter.outputs and call.code_interpreter.outputs[0].type in ("logs", "image")
    assert steps[-1].type == "message_creation"


def test_sandbox_command_files_in_and_out(stack: StackHandle, client: openai.OpenAI) -> None:
    csv = client.files.create(
        file=("scores.csv", b"name,score\nann,3\nbob,5\ncid,10\n"), purpose="assistants"
    )
    code = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "df = pd.read_csv('/mnt/data/scores.csv')\n"
        "print(df.score.mean())\n"
        "df.assign(double=df.score * 2).to_csv('/mnt/data/doubled.csv', index=False)\n"
        "df.plot(x='name', y='score'); plt.show()\n"
    )
    out = subprocess.run(
        [str(ASSISTANTS), "sandbox", "run", "--data-dir", str(stack.data_dir), "--file", csv.id, "--", code],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and result["error"] is None, result
    assert result["stdout"].strip() == "6.0"
    produced = {client.files.retrieve(f).filename: f for f in result["files"]}
    assert set(produced) == {"doubled.csv", "image_0.png"}, produced
    assert (
        client.files.content(produced["doubled.csv"]).read()
        == b"name,score,double\nann,3,6\nbob,5,10\ncid,10,20\n"
    )
    assert client.files.content(produced["image_0.png"]).read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.files.retrieve(produced["doubled.csv"]).purpose == "assistants_output"


def test_file_search_run_cites_the_file(client: openai.OpenAI, model_name: str) -> None:
    store = client.vector_stores.create(name="zoo")
    doc = b"# Zorblat\nThe zorblat is a purple fish that lives in Lake Quibble and eats moonweed at night.\n"
    vs_file = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=("zorblat.md", doc))
    assert vs_file.status == "completed"
    a = client.beta.assistants.create(
        model=model_name,
        temperature=0,
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What does the zorblat eat?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=a.id,
        poll_interval_ms=300,
        tool_choice={"type": "file_search"},
        max_completion_tokens=80,
    )
    assert run.status == "completed", run.last_error or run.incomplete_details
    steps = client.beta.threads.runs.steps.list(
        run_id=run.id, thread_id=thread.id, order="asc", include=[RESULT_CONTENT]
    ).data
    search = steps[0].step_details.tool_calls[0]
    assert search.type == "file_search" and search.file_search.results
    top = search.file_search.results[0]
    assert top.file_id == vs_file.id and "moonweed" in top.content[0].text
    plain = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    assert not plain[0].step_details.tool_calls[0].file_search.results[0].content  # only with include[]
    [msg] = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    cites = [a for a in msg.content[0].text.annotations if a.type == "file_citation"]
    assert cites and cites[0].file_citation.file_id == vs_file.id
    text = msg.content[0].text.value
    assert text[cites[0].start_index : cites[0].end_index] == cites[0].text


def test_v1_retrieval_and_file_ids(
    stack: StackHandle, api_key: str, client: openai.OpenAI, model_name: str
) -> None:
    f = client.files.create(file=("notes.txt", b"The launch code word is periwinkle."), purpose="assistants")
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v1"}
    r = httpx.post(
        stack.base_url + "/assistants",
        headers=headers,
        timeout=30,
        json={"model": model_name, "tools": [{"type": "retrieval"}], "file_ids": [f.id]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tools"] == [{"type": "file_search"}]
    [store_id] = body["tool_resources"]["file_search"]["vector_store_ids"]
    files = client.vector_stores.files.list(vector_store_id=store_id).data
    assert [x.id for x in files] == [f.id]
