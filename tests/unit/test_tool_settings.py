from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_arbiter.core.prompts import PromptError, expand, load_requests
from batch_arbiter.core.settings import load_settings
from batch_arbiter.errors import InputError


@pytest.fixture(autouse=True)
def clean_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("INPUT_"):
            monkeypatch.delenv(name)


def test_tools_and_max_turns_from_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv("INPUT_TOOLS", "read\n  grep, web-search\n\n")
    monkeypatch.setenv("INPUT_MAX-TURNS", "4")
    s = load_settings()
    assert (s.tools, s.max_turns) == (("read", "grep", "web-search"), 4)


def test_no_tools_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv("INPUT_TOOLS", "")
    monkeypatch.setenv("INPUT_MAX-TURNS", "")
    s = load_settings()
    assert (s.tools, s.max_turns) == ((), 10)


def test_an_unknown_tool_names_the_input_and_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv("INPUT_TOOLS", "read, Bash")
    with pytest.raises(InputError) as info:
        load_settings()
    assert str(info.value).startswith("input `tools`: unknown tool 'Bash'; known tools: read, glob, grep")
    assert "Value error" not in str(info.value) and info.value.input == "tools"


def _load(root: Path, files: dict[str, str], tools: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    requests = load_requests(expand(["prompts/*"], root), root, tools=tools)
    return {r.custom_id: r.tools for r in requests}


def test_a_request_s_own_tools_override_the_input(tmp_path: Path) -> None:
    lines = [{"prompt": "a"}, {"prompt": "b", "tools": ["grep", "read", "grep"]}, {"prompt": "c", "tools": []}]
    files = {
        "prompts/plain.md": "hello",
        "prompts/one.json": json.dumps({"prompt": "x", "tools": "web-fetch, glob"}),
        "prompts/many.jsonl": "\n".join(json.dumps(line) for line in lines),
    }
    assert _load(tmp_path, files, tools=("read",)) == {
        "prompts_many_jsonl_1": ("read",),
        "prompts_many_jsonl_2": ("grep", "read"),
        "prompts_many_jsonl_3": (),
        "prompts_one_json": ("web-fetch", "glob"),
        "prompts_plain_md": ("read",),
    }
    assert set(_load(tmp_path / "none", {"prompts/plain.md": "hello"}).values()) == {()}


def test_a_request_with_an_unknown_tool_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match=r"prompts/one\.json: tools: unknown tool 'bash'; known tools: read"):
        _load(tmp_path, {"prompts/one.json": json.dumps({"prompt": "x", "tools": ["bash"]})})
