"""Bad input ends the run with an `::error::` and exit 2 before anything is sent: never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.emulator import Emulator
from support import Run, run_action, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "A fine prompt."})
    return root


def refused(run: Run, emulator: Emulator | None, fragment: str) -> None:
    assert run.code == 2, run.log
    assert "::error" in run.log, run.log
    assert fragment in run.log, run.log
    assert "Traceback" not in run.log
    if emulator is not None:
        assert emulator.calls() == [], [c.route for c in emulator.calls()]


def request_file(root: Path, name: str, obj: dict[str, Any]) -> None:
    write_prompts(root, {name: json.dumps(obj)})


# -- item 4: content blocks are checked against what the provider takes ---------------------------


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_text_block_whose_text_is_not_a_string_is_bad_input(ws: Path, emulator: Emulator, provider: str) -> None:
    blocks = [{"type": "text", "text": 5}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", provider=provider)
    refused(run, emulator, "prompts/b.json: messages.0.content.0.text")


def test_an_image_block_is_bad_input_on_gemini(ws: Path, emulator: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    blocks = [image, {"type": "text", "text": "What is this?"}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", provider="gemini")
    refused(run, emulator, "gemini takes only text blocks")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ([], "content: a list of content blocks must not be empty"),
        (["just a string"], "content.0: a content block must be an object with a string `type`"),
        ([{"text": "no type"}], "content.0: a content block must be an object with a string `type`"),
    ],
)
def test_malformed_content_blocks_are_bad_input(ws: Path, emulator: Emulator, content: Any, fragment: str) -> None:
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": content}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    refused(run, emulator, fragment)


def test_an_image_block_still_goes_to_anthropic(ws: Path, emulator: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    blocks = [image, {"type": "text", "text": "What is this?"}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    sent = {r["custom_id"]: r["params"] for r in emulator.calls("create")[0].body["requests"]}
    assert sent["prompts_b_json"]["messages"][0]["content"][0]["type"] == "image"
