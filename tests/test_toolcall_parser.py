"""The parser for the model's tool-call format, and the streaming filter that keeps markup out of
message text."""

from __future__ import annotations

from activities.llm.toolcalls import ArgumentsReader, MarkupFilter, messages_for_template, parse_tool_calls


def test_hermes_block() -> None:
    text, calls = parse_tool_calls(
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
    assert text == "" and [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]


def test_lenient_forms() -> None:
    _, calls = parse_tool_calls(
        '<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n'
    )  # no closing tag, `parameters`
    assert [(c.name, c.arguments) for c in calls] == [("f", {"a": 1})]
    _, calls = parse_tool_calls(
        '<tool_call>{"name": "f", "arguments": "{\\"a\\": 2}"}</tool_call>'
    )  # string arguments
    assert calls[0].arguments == {"a": 2}
    _, calls = parse_tool_calls(
        '[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"x": "y"}}]'
    )  # bare JSON list
    assert [c.name for c in calls] == ["f", "g"]
    _, calls = parse_tool_calls(
        '<tool_call>{"name": "f", "arguments": {"a": </tool_call>'
    )  # truncated arguments
    assert calls[0].name == "f" and calls[0].arguments is None


def test_text_then_call_and_plain_text() -> None:
    text, calls = parse_tool_calls('Let me check. <tool_call>{"name": "f", "arguments": {}}</tool_call>')
    assert text == "Let me check. " and calls[0].name == "f"
    text, calls = parse_tool_calls("Paris is the capital of France.")
    assert text == "Paris is the capital of France." and calls == []
    text, calls = parse_tool_calls('{"not": "a call"}')
    assert calls == [] and text == '{"not": "a call"}'


def test_markup_filter_never_streams_markup() -> None:
    pieces = ["Let", " me", " check", ". <tool", "_call>", '{"name": "f"', "}</tool_call>"]
    f = MarkupFilter()
    out = "".join(f.feed(p) for p in pieces)
    assert out == "Let me check. " and "<" not in out
    g = MarkupFilter()
    assert "".join(g.feed(p) for p in ["Use ", "<b>", " bold"]) + g.pending == "Use <b> bold"


def test_history_rendering_without_native_tools() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "-3 C", "tool_call_id": "call_1"},
    ]
    specs = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    out = messages_for_template(msgs, specs, native=False)
    assert (
        out[0]["role"] == "system" and "get_weather" in out[0]["content"] and "Be brief." in out[0]["content"]
    )
    assert out[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
    }
    assert out[3]["role"] == "user" and "-3 C" in out[3]["content"]
    assert messages_for_template(msgs, specs, native=True) is msgs


def test_arguments_are_read_as_they_arrive() -> None:
    """The first call's name, then its arguments' raw text piece by piece, up to the closing
    brace (braces and escaped quotes inside strings do not count)."""
    text = 'Sure. <tool_call>{"name": "f", "arguments": {"q": "a}\\"{", "n": [1, {"b": 2}]}}</tool_call>x'
    f, r, pieces = MarkupFilter(), ArgumentsReader(), []
    for i in range(0, len(text), 3):
        f.feed(text[i : i + 3])
        if f.in_call:
            pieces.append(r.feed(f.call_text))
    assert f.emitted == "Sure. " and r.name == "f" and r.closed
    assert "".join(pieces) == r.raw == '{"q": "a}\\"{", "n": [1, {"b": 2}]}'
    assert len([p for p in pieces if p]) > 5
    other = ArgumentsReader()  # arguments before the name: never read
    assert other.feed('{"arguments": {"a": 1}, "name": "f"}') == "" and other.name is None
