from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_arbiter.core.prompts import CUSTOM_ID_PATTERN, PromptError, derive_custom_id, expand, load_requests


def make(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def load(root: Path, *patterns: str, system: str | None = None) -> list:  # type: ignore[type-arg]
    return load_requests(expand(patterns, root), root, system)


def test_three_file_kinds(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "p/a.md": "Write a haiku.",
            "p/b.json": json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 99}),
            "p/c.jsonl": '{"prompt": "one"}\n\n{"prompt": "two", "custom_id": "mine", "system": "own"}\n',
        },
    )
    reqs = load(tmp_path, "p/*", system="shared")
    by_source = {r.source: r for r in reqs}
    assert set(by_source) == {"p/a.md", "p/b.json", "p/c.jsonl:1", "p/c.jsonl:3"}
    assert by_source["p/a.md"].messages == ({"role": "user", "content": "Write a haiku."},)
    assert by_source["p/b.json"].max_tokens == 99
    assert by_source["p/c.jsonl:3"].custom_id == "mine"
    assert by_source["p/c.jsonl:3"].system == "own"
    assert by_source["p/c.jsonl:1"].system == "shared"
    assert all(CUSTOM_ID_PATTERN.match(r.custom_id) for r in reqs)


def test_custom_ids_are_stable_valid_and_unique(tmp_path: Path) -> None:
    long_dir = "d" * 80
    make(tmp_path, {"x/a.b.md": "1", "x/a_b.md": "2", f"{long_dir}/one.md": "3", f"{long_dir}/two.md": "4"})
    first = load(tmp_path, "**/*.md")
    second = load(tmp_path, "**/*.md")
    ids = [r.custom_id for r in first]
    assert ids == [r.custom_id for r in second]
    assert len(set(ids)) == len(ids) == 4
    assert all(CUSTOM_ID_PATTERN.match(i) for i in ids)
    assert derive_custom_id("prompts/idea-1.md") == "prompts_idea-1_md"


@pytest.mark.parametrize(
    ("files", "pattern", "fragment"),
    [
        ({}, "missing.md", "prompt file not found: missing.md"),
        ({"a.md": "x"}, "*.txt", "matches no file"),
        ({"a.jsonl": '{"prompt": "ok"}\n{"prompt": '}, "a.jsonl", "a.jsonl:2: not valid JSON"),
        ({"a.json": '{"prompt": "x", "temperature": 1}'}, "a.json", "a.json: temperature: Extra inputs"),
        ({"a.json": '{"custom_id": "bad id!", "prompt": "x"}'}, "a.json", "custom_id"),
        ({"a.json": '{"system": "x"}'}, "a.json", "exactly one of `prompt` or `messages`"),
        ({"a.md": "   \n"}, "a.md", "is empty"),
        (
            {"a.jsonl": '{"custom_id": "d", "prompt": "1"}\n{"custom_id": "d", "prompt": "2"}\n'},
            "a.jsonl",
            "used twice",
        ),
        ({}, "../etc/passwd", "without `..`"),
        ({}, "/etc/passwd", "relative to the workspace"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, files: dict[str, str], pattern: str, fragment: str) -> None:
    make(tmp_path, files)
    with pytest.raises(PromptError) as info:
        load(tmp_path, pattern)
    assert fragment in str(info.value)


def test_symlink_out_of_workspace_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("secret", encoding="utf-8")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "link.md").symlink_to(outside)
    with pytest.raises(PromptError, match="outside the workspace"):
        load(ws, "*.md")


def test_oversized_prompt_file_is_refused_with_its_name(tmp_path: Path) -> None:
    from batch_arbiter.core.prompts import MAX_REQUEST_BYTES

    make(tmp_path, {"big.md": "x" * (MAX_REQUEST_BYTES + 1)})
    with pytest.raises(PromptError, match=r"prompt file big\.md is 8,388,609 bytes"):
        load(tmp_path, "big.md")


def test_custom_id_cannot_name_a_path(tmp_path: Path) -> None:
    make(tmp_path, {"a.json": json.dumps({"custom_id": "../../outside", "prompt": "x"})})
    with pytest.raises(PromptError, match=r"a\.json: custom_id: String should match pattern"):
        load(tmp_path, "a.json")
