"""Issue 7: the playground page (/playground) driven in a real browser (Debian's chromium through
Python playwright) against the shared real stack: assistants with a function tool made through
the form, streamed chat, a forced function call answered through the form, a file ingested into a
vector store, the Temporal UI link, readable errors, and a narrow (mobile) layout.

Screenshots of the main views land in tests/artifacts/screenshots/ (desktop 1280x800, mobile
390x844). Generations are short and greedy to stay cheap on a 2-core machine.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.requires import missing
from tests.stackutil import StackHandle, http_status

pytestmark = pytest.mark.timeout(600)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
MODEL = "smollm2-135m-instruct"
WEATHER_FN: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
RUN_ENDED = ".run-status.completed, .run-status.incomplete, .run-status.failed, .run-status.cancelled, .run-status.expired"

try:
    from playwright import sync_api
except ImportError:
    missing("the playwright package is not installed (dev extras)")
if not Path(CHROMIUM).exists():
    missing(f"{CHROMIUM} is missing: `make setup` installs it (scripts/setup_browser.sh)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Playground:
    """One browser context on /playground, with the page errors it saw."""

    def __init__(self, browser: Any, stack: StackHandle, viewport: dict[str, int]) -> None:
        self.stack = stack
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.mobile = viewport["width"] < 600

    def open(self, key: str | None, view: str = "assistants") -> Any:
        page = self.page
        page.goto(f"{self.stack.api_url}/playground#{view}")
        if key is not None:
            page.fill("#api-key", key)
            page.click("#key-form button[type=submit]")
            page.wait_for_selector("#key-status:has-text('Connected')")
        return page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(SHOTS / f"{name}-{'mobile' if self.mobile else 'desktop'}.png"))

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"uncaught errors in the page: {self.errors}"


@pytest.fixture
def desktop(browser: Any, stack: StackHandle) -> Iterator[Playground]:
    pg = Playground(browser, stack, DESKTOP)
    yield pg
    pg.close()


@pytest.fixture
def mobile(browser: Any, stack: StackHandle) -> Iterator[Playground]:
    pg = Playground(browser, stack, MOBILE)
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def weather_assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(
        model=MODEL,
        name="pw-weather",
        instructions="You are a helpful assistant. Be brief.",
        temperature=0,
        tools=[{"type": "function", "function": WEATHER_FN}],  # type: ignore[typeddict-item]
    )


def _chat_with(page: Any, assistant_id: str, max_tokens: int) -> None:
    page.click(".tabs a[data-view=chat]")
    page.wait_for_selector(f"#chat-assistant option[value='{assistant_id}']", state="attached")
    page.select_option("#chat-assistant", assistant_id)
    page.click("#new-thread")
    page.fill("#chat-max-tokens", str(max_tokens))


def _send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")  # Enter sends; Shift+Enter would add a line


def test_assets_are_served_by_name_only(stack: StackHandle) -> None:
    with urllib.request.urlopen(
        f"{stack.api_url}/playground"
    ) as resp:  # follows the redirect to /playground/
        assert resp.url.endswith("/playground/") and resp.headers["content-type"].startswith("text/html")
    with urllib.request.urlopen(f"{stack.api_url}/playground/app.js") as resp:
        assert resp.headers["content-type"].startswith("text/javascript")  # ES modules need a JS type
    for path in (
        "/playground/..%2Fapp.py",
        "/playground/%2E%2E%2F%2E%2E%2Fpyproject.toml",
        "/playground/missing.js",
    ):
        assert http_status(stack.api_url + path) == 404, path


def test_page_is_served_and_bad_key_shows_the_api_message(desktop: Playground) -> None:
    page = desktop.open(None)
    assert page.title() == "Assistants playground"
    page.fill("#api-key", "sk-not-a-real-key")
    page.keyboard.press("Enter")
    notice = page.wait_for_selector("#notice[role=alert]")
    assert "Incorrect API key provided." in notice.inner_text()
    assert page.locator("#assistant-list li").count() == 0  # nothing was loaded with a bad key


def test_create_assistant_with_a_function_tool(
    desktop: Playground, api_key: str, client: openai.OpenAI
) -> None:
    page = desktop.open(api_key)
    page.click("#new-assistant")
    page.fill("#asst-name", "pw-created-in-ui")
    page.fill("#asst-temperature", "0")
    page.click("#add-function")
    editor = page.locator(".function-editor textarea").first
    # Validation feedback while typing: bad JSON, then a schema without a name, then a valid one.
    editor.fill('{"name": "get_weather",')
    page.wait_for_selector(".function-editor .feedback.bad:has-text('Not valid JSON')")
    editor.fill('{"description": "no name", "parameters": {"type": "object"}}')
    page.wait_for_selector(".function-editor .feedback.bad:has-text('\"name\" is required')")
    page.click("#save-assistant")
    assert "Fix the function definitions" in page.wait_for_selector("#notice[role=alert]").inner_text()
    editor.fill('{"name": "get_weather", "parameters": {"type": "array"}}')
    page.wait_for_selector(".function-editor .feedback.bad:has-text('\"parameters\" must be')")
    editor.fill(json.dumps(WEATHER_FN, indent=2))
    page.wait_for_selector(".function-editor .feedback.good:has-text('get_weather(city)')")
    page.click("#save-assistant")
    page.wait_for_selector("#notice:has-text('Created assistant pw-created-in-ui')")
    page.wait_for_selector("#assistant-list .item.selected:has-text('pw-created-in-ui')")
    desktop.shot("assistants")

    created = [a for a in client.beta.assistants.list(limit=100).data if a.name == "pw-created-in-ui"]
    assert len(created) == 1
    [tool] = created[0].tools
    assert tool.type == "function" and tool.function.name == "get_weather"  # type: ignore[union-attr]
    assert tool.function.parameters == WEATHER_FN["parameters"]  # type: ignore[union-attr]
    assert created[0].temperature == 0

    # Edit (rename) and delete through the same form.
    page.fill("#asst-name", "pw-renamed")
    page.click("#save-assistant")
    page.wait_for_selector("#assistant-list .item.selected:has-text('pw-renamed')")
    assert client.beta.assistants.retrieve(created[0].id).name == "pw-renamed"
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-assistant")
    page.wait_for_selector("#notice:has-text('Deleted assistant pw-renamed')")
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created[0].id)


def test_chat_streams_text_in_several_paints(
    desktop: Playground, api_key: str, client: openai.OpenAI, weather_assistant: Any
) -> None:
    page = desktop.open(api_key)
    _chat_with(page, weather_assistant.id, max_tokens=32)
    # Record the assistant text's length at every DOM change: a stream grows it in many steps.
    page.evaluate("""() => {
        window.__lengths = [];
        const t = document.querySelector('#transcript');
        new MutationObserver(() => {
            const bubbles = t.querySelectorAll('.msg.assistant .content');
            const n = bubbles.length ? bubbles[bubbles.length - 1].textContent.length : 0;
            if (n && n !== window.__lengths[window.__lengths.length - 1]) window.__lengths.push(n);
        }).observe(t, {childList: true, subtree: true, characterData: true});
    }""")
    _send(page, "Tell me a short story about a cat.")
    page.wait_for_selector(RUN_ENDED, timeout=120_000)
    lengths: list[int] = page.evaluate("window.__lengths")
    assert len(lengths) >= 3 and lengths == sorted(lengths), lengths
    status = page.inner_text(".run-status")
    assert status == "incomplete", page.inner_text(".run")  # a story is longer than 32 tokens
    desktop.shot("chat")

    shown = page.inner_text("#transcript .msg.assistant .content").strip()
    thread_id = page.inner_text("#thread-id").strip()
    [message] = [m for m in client.beta.threads.messages.list(thread_id).data if m.role == "assistant"]
    stored = message.content[0].text.value.strip()  # type: ignore[union-attr]
    assert shown == stored and len(stored) > 10


def test_forced_function_call_answered_through_the_form(
    desktop: Playground, api_key: str, client: openai.OpenAI, weather_assistant: Any
) -> None:
    page = desktop.open(api_key)
    _chat_with(page, weather_assistant.id, max_tokens=200)
    page.select_option("#chat-tool-choice", label="function: get_weather")
    _send(page, "What is the weather in Paris?")
    output = page.wait_for_selector(".tool-form textarea", timeout=120_000)
    assert page.inner_text(".run-status") == "requires_action"
    assert "get_weather(" in page.inner_text(".tool-form legend + .field label")
    focused = page.evaluate("document.activeElement.classList.contains('tool-output')")
    assert focused, "focus should move to the tool output form"
    assert page.is_enabled("#cancel-run") and not page.is_enabled("#send")
    output.fill('{"temperature_c": 21, "sky": "sunny"}')
    desktop.shot("tool-form")
    page.click(".tool-form button[type=submit]")
    page.wait_for_selector(RUN_ENDED, timeout=120_000)
    assert page.inner_text(".run-status") == "completed", page.inner_text(".run")
    step = page.inner_text(".step .tool.function")
    assert "get_weather" in step and "Paris" in step and "sunny" in step  # arguments and output inline

    run_id = page.get_attribute(".run", "data-run-id")
    thread_id = page.inner_text("#thread-id").strip()
    run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)  # type: ignore[arg-type]
    assert run.status == "completed"
    assert page.is_enabled("#send") and not page.is_enabled("#cancel-run")


def test_cancel_a_run_waiting_for_tool_outputs(
    desktop: Playground, api_key: str, weather_assistant: Any
) -> None:
    page = desktop.open(api_key)
    _chat_with(page, weather_assistant.id, max_tokens=16)
    page.select_option("#chat-tool-choice", label="function: get_weather")
    _send(page, "Weather in Oslo?")
    page.wait_for_selector(".tool-form textarea", timeout=120_000)
    page.click("#cancel-run")
    page.wait_for_selector(".run-status.cancelled", timeout=60_000)
    assert page.is_disabled(".tool-form textarea")  # the form is closed with the run


def test_file_in_a_vector_store_reaches_completed(desktop: Playground, api_key: str, tmp_path: Path) -> None:
    doc = tmp_path / "playground-notes.md"
    doc.write_text("# Notes\n\nThe playground stores the API key in the browser only.\n" * 20)
    page = desktop.open(api_key, view="files")
    page.fill("#store-name", "pw-store")
    page.click("#create-store")
    page.wait_for_selector("#store-list .item.selected:has-text('pw-store')")
    page.set_input_files("#store-upload", str(doc))
    page.click("#store-upload-button")
    # The row shows once the upload, the attach and the view's reload of every file are done: in
    # two of this session's full CI runs that took over 30 s (cause not found; see the closing note).
    page.wait_for_selector("#store-files tr:has-text('playground-notes.md')", timeout=120_000)
    page.wait_for_selector("#store-files .badge.completed", timeout=120_000)
    page.wait_for_selector("label[for=store-progress]:has-text('1 of 1 completed')")
    assert page.get_attribute("#store-progress", "value") == "1"
    page.wait_for_selector("#file-table td:has-text('playground-notes.md')")
    desktop.shot("files")


def test_run_links_to_its_workflow_in_the_temporal_ui(
    desktop: Playground, stack: StackHandle, api_key: str, client: openai.OpenAI, assistant: Any
) -> None:
    if not stack.temporal_ui:
        missing("this stack runs without the Temporal UI")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=4, poll_interval_ms=200
    )
    page = desktop.open(api_key, view="chat")
    page.fill("#open-thread", thread.id)
    page.press("#open-thread", "Enter")
    link = page.wait_for_selector(f".run[data-run-id='{run.id}'] a.temporal-link")
    href = link.get_attribute("href")
    assert href == f"{stack.temporal_ui.rstrip('/')}/namespaces/default/workflows/{run.id}"
    with page.expect_popup() as popup_info:
        link.click()
    ui = popup_info.value
    # The Temporal UI is a single-page app: wait for it to render the workflow, not just load.
    ui.wait_for_selector(f"text={run.id}", timeout=60_000)
    ui.wait_for_selector("text=/Completed/i", timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui.screenshot(path=str(SHOTS / "temporal-ui-desktop.png"))
    ui.close()


def test_mobile_width_views(mobile: Playground, api_key: str, client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=12, poll_interval_ms=200
    )
    page = mobile.open(api_key)
    page.wait_for_selector("#assistant-list .item")
    no_overflow = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    assert page.evaluate(no_overflow)
    mobile.shot("assistants")
    page.click(".tabs a[data-view=files]")
    page.wait_for_selector("#store-form")
    assert page.evaluate(no_overflow)
    mobile.shot("files")
    page.click(".tabs a[data-view=chat]")
    page.fill("#open-thread", thread.id)
    page.press("#open-thread", "Enter")
    page.wait_for_selector(RUN_ENDED)
    page.wait_for_selector("#transcript .msg.user")
    assert page.evaluate(no_overflow)
    # Keyboard: the composer is reachable and focus is visible.
    page.focus("#chat-input")
    assert page.evaluate("getComputedStyle(document.activeElement).boxShadow") != "none"
    mobile.shot("chat")


def test_thread_picker_lists_recent_threads_and_loads_one(
    desktop: Playground, api_key: str, client: openai.OpenAI
) -> None:
    """Issue 14 item 6: the chat view's "Recent threads" select lists GET /v1/threads; picking one
    loads its transcript."""
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "picker check"}], metadata={"name": "picker-thread"}
    )
    page = desktop.open(api_key, view="chat")
    option = page.wait_for_selector(f"#thread-picker option[value='{thread.id}']", state="attached")
    assert option is not None and "picker-thread" in option.inner_text()
    page.select_option("#thread-picker", thread.id)
    page.wait_for_selector("#transcript .msg.user:has-text('picker check')")
    assert page.inner_text("#thread-id") == thread.id
