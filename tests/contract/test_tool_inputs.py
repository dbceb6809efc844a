"""The agent inputs (`tools`, `max-turns`, a request's own `tools`): bad values stop the run with exit 2
and nothing sent, for both providers; good ones run the conversations over batch rounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.emulator import Emulator
from support import API_KEY, PROVIDERS, Run, run_action, write_prompts

KNOWN = "known tools: read, glob, grep, web-search, web-fetch, code-execution"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "A fine prompt."})
    return root


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def refused(run: Run, emulator: Emulator, fragment: str) -> None:
    assert run.code == 2, run.log
    assert "::error" in run.log and fragment in run.log, run.log
    assert "Traceback" not in run.log
    assert emulator.calls() == [], [c.route for c in emulator.calls()]


def request_file(root: Path, name: str, obj: dict[str, Any]) -> None:
    write_prompts(root, {name: json.dumps(obj)})


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ("read, bash", f"input `tools`: unknown tool 'bash'; {KNOWN}"),
        ("Read\nGrep", "input `tools`: unknown tools 'Read', 'Grep'"),
        ("web_search", "unknown tool 'web_search'"),
    ],
)
def test_unknown_tools_are_bad_input(ws: Path, emulator: Emulator, provider: str, tools: str, fragment: str) -> None:
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch", tools=tools)
    refused(run, emulator, fragment)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0", "greater than or equal to 1"), ("101", "less than or equal to 100"), ("ten", "a valid integer")],
)
def test_max_turns_out_of_range_is_bad_input(
    ws: Path, emulator: Emulator, provider: str, value: str, fragment: str
) -> None:
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch", max_turns=value)
    refused(run, emulator, f"input `max-turns`: Input should be {fragment}")


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        (["read", "shell"], f"prompts/b.json: tools: unknown tool 'shell'; {KNOWN}"),
        ("grep, Edit", "prompts/b.json: tools: unknown tool 'Edit'"),
        (["read", 3], "prompts/b.json: tools"),
        ({"read": True}, "prompts/b.json: tools"),
    ],
)
def test_a_request_with_unknown_tools_is_bad_input(
    ws: Path, emulator: Emulator, provider: str, tools: Any, fragment: str
) -> None:
    request_file(ws, "prompts/b.json", {"prompt": "Look around.", "tools": tools})
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch")
    refused(run, emulator, fragment)


def test_a_jsonl_line_with_unknown_tools_names_its_line(ws: Path, emulator: Emulator, provider: str) -> None:
    lines = [{"prompt": "one"}, {"prompt": "two", "tools": ["read", "write"]}]
    write_prompts(ws, {"prompts/many.jsonl": "\n".join(json.dumps(line) for line in lines) + "\n"})
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch")
    refused(run, emulator, "prompts/many.jsonl:2: tools: unknown tool 'write'")


@pytest.mark.parametrize("mode", ["batch", "sync"])
def test_tools_run_the_prompts_as_conversations(ws: Path, emulator: Emulator, provider: str, mode: str) -> None:
    write_prompts(ws, {"prompts/a.md": 'Look. [[emulator:agent glob {"pattern": "prompts/*"}]]'})
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode=mode, tools="read,grep,glob")
    assert run.code == 0, run.log
    (line,) = run.results
    assert (line["status"], line["turns"], line["tool_calls"], line["via"]) == ("succeeded", 2, {"glob": 1}, mode)


def test_a_request_s_own_tools_override_the_input(ws: Path, emulator: Emulator, provider: str) -> None:
    request_file(
        ws, "prompts/b.json", {"prompt": 'Go. [[emulator:agent read {"path": "prompts/a.md"}]]', "tools": ["glob"]}
    )
    write_prompts(ws, {"prompts/a.md": 'Go. [[emulator:agent read {"path": "prompts/a.md"}]]'})
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch", tools="read")
    assert run.code == 0, run.log
    lines = run.by_id()
    # b may only glob: the model is not offered `read`, so it answers at once; a reads its file.
    assert (lines["prompts_b_json"]["turns"], lines["prompts_b_json"]["tool_calls"]) == (1, {})
    assert (lines["prompts_a_md"]["turns"], lines["prompts_a_md"]["tool_calls"]) == (2, {"read": 1})


def test_tools_with_a_response_schema_on_gemini_2_are_bad_input(ws: Path, emulator: Emulator) -> None:
    # Gemini 2 refuses function calling beside a JSON response; Gemini 3 and Claude take both
    # (tests/contract/test_agent_structured.py).
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    write_prompts(ws, {"schema.json": json.dumps(schema)})
    run = run_action(
        ws,
        emulator,
        provider="gemini",
        model="gemini-2.5-flash-lite",
        prompt_files="prompts/*",
        tools="read",
        response_schema="schema.json",
    )
    refused(run, emulator, "prompts/a.md: gemini-2.5-flash-lite takes no tools together with a response schema")


def test_the_emulator_refuses_tools_beside_a_json_response_on_gemini_2(emulator: Emulator) -> None:
    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=emulator.base_url))
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="read", description="Read a file.")])
    config = types.GenerateContentConfig(
        tools=[tool], response_mime_type="application/json", response_json_schema={"type": "object"}
    )
    with pytest.raises(errors.ClientError, match="Function calling with a response mime type"):
        client.models.generate_content(model="gemini-2.5-flash-lite", contents="Hi", config=config)
    answer = client.models.generate_content(model="gemini-3.8-flash", contents="Hi", config=config)
    assert json.loads(answer.text or "") == {}


def test_no_tools_runs_as_before(ws: Path, emulator: Emulator, provider: str) -> None:
    request_file(ws, "prompts/b.json", {"prompt": "No tools here.", "tools": []})
    run = run_action(ws, emulator, provider=provider, prompt_files="prompts/*", mode="batch", tools="", max_turns="3")
    assert run.code == 0, run.log
    assert {r["status"] for r in run.results} == {"succeeded"} and len(run.results) == 2
