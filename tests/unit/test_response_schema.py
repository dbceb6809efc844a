"""Response schemas: read and checked (JSON Schema, and each provider's subset), answers validated with the
place and reason of a mismatch, and per-request schemas in prompt files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.core import prompts
from batch_arbiter.core.structured import SchemaError, Validators, check_schema, read_schema
from batch_arbiter.providers.registry import info
from batch_arbiter.providers.schemas import anthropic_schema_problem, gemini_schema_problem, wire_schema

CLOSED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"size": {"type": "string", "enum": ["S", "M"]}},
                "required": ["size"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["items"],
    "additionalProperties": False,
}


def test_check_schema_takes_the_draft_it_names_and_refuses_what_is_not_json_schema() -> None:
    check_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}, "x")
    check_schema(CLOSED, "x")
    with pytest.raises(SchemaError, match=r"x: not valid JSON Schema: at \$.properties.items.type"):
        check_schema({"properties": {"items": {"type": "list"}}}, "x")
    with pytest.raises(SchemaError, match="unknown \\$schema"):
        check_schema({"$schema": "https://example.com/dialect"}, "x")
    # Draft-07 has no `prefixItems` array check, draft 4 takes `exclusiveMinimum` as a boolean only.
    with pytest.raises(SchemaError, match="exclusiveMinimum"):
        check_schema({"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": 3}, "x")


def test_validation_messages_name_the_place_and_the_reason() -> None:
    check = Validators().check
    assert check('{"items": [{"size": "S"}]}', CLOSED).value == {"items": [{"size": "S"}]}
    bad = check('{"items": [{"size": "XL"}]}', CLOSED)
    assert not bad.valid
    assert bad.error == "the answer does not match the schema: at $.items[0].size: 'XL' is not one of ['S', 'M']"
    assert check('{"items": [], "extra": 1}', CLOSED).error == (
        "the answer does not match the schema: at $: Additional properties are not allowed ('extra' was unexpected)"
    )
    assert (check("Sure! Here is the JSON:", CLOSED).error or "").startswith("the answer is not JSON: Expecting value")
    assert check("", CLOSED).error == "the answer is empty, not JSON"
    assert check(None, CLOSED).error == "the answer is empty, not JSON"


def test_anthropic_subset() -> None:
    assert anthropic_schema_problem(CLOSED) is None
    opened = json.loads(json.dumps(CLOSED))
    del opened["properties"]["items"]["items"]["additionalProperties"]
    assert anthropic_schema_problem(opened) == (
        "response schema at $.properties.items.items: an object must set additionalProperties to false "
        "by anthropic's structured output"
    )
    assert "minItems may only be 0 or 1" in (anthropic_schema_problem({"type": "array", "minItems": 2}) or "")
    assert "keyword 'maximum'" in (anthropic_schema_problem({"type": "integer", "maximum": 3}) or "")
    assert "keyword 'oneOf'" in (anthropic_schema_problem({"oneOf": [{"type": "string"}]}) or "")
    assert "format 'regex'" in (anthropic_schema_problem({"type": "string", "format": "regex"}) or "")
    assert "only local references" in (anthropic_schema_problem({"$ref": "https://example.com/s.json"}) or "")
    recursive = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    assert "recursive schemas are not supported" in (anthropic_schema_problem(recursive) or "")


def test_gemini_subset() -> None:
    assert gemini_schema_problem(CLOSED) is None
    assert gemini_schema_problem({"type": "integer", "minimum": 1, "maximum": 9}) is None
    assert "keyword 'pattern'" in (gemini_schema_problem({"type": "string", "pattern": "^a"}) or "")
    assert "beside keywords that start with $" in (
        gemini_schema_problem(
            {"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a", "type": "string"}}}
        )
        or ""
    )


def test_wire_schema_drops_only_the_dialect() -> None:
    assert wire_schema({"$schema": "https://json-schema.org/draft/2020-12/schema", **CLOSED}) == CLOSED


def test_read_schema_stays_in_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(CLOSED), encoding="utf-8")
    assert read_schema("s.json", tmp_path, "x") == CLOSED
    assert read_schema(CLOSED, tmp_path, "x") == CLOSED
    with pytest.raises(SchemaError, match="outside the workspace"):
        read_schema("../s.json", tmp_path / "sub", "x")
    (tmp_path / "list.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(SchemaError, match="must be a JSON object"):
        read_schema("list.json", tmp_path, "x")


def test_prompt_files_carry_their_schemas(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(CLOSED), encoding="utf-8")
    (tmp_path / "a.md").write_text("plain prompt", encoding="utf-8")
    inline = {"type": "object", "properties": {}, "additionalProperties": False}
    lines = [
        {"custom_id": "one", "prompt": "x", "response_schema": "s.json"},
        {"custom_id": "two", "prompt": "y", "response_schema": "s.json"},
        {"custom_id": "three", "prompt": "z", "response_schema": inline},
        {"custom_id": "four", "prompt": "w"},
    ]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    default = {"type": "string"}
    rules = info("anthropic").content_rules
    files = prompts.expand(["a.md", "b.jsonl"], tmp_path)
    got = {r.custom_id: r.response_schema for r in prompts.load_requests(files, tmp_path, None, rules, default)}
    assert got["a_md"] is default and got["four"] is default and got["three"] == inline
    # One file named by many requests is read once and shared.
    assert got["one"] == CLOSED and got["one"] is got["two"]
    (tmp_path / "c.jsonl").write_text(json.dumps({"prompt": "x", "response_schema": {"type": "object"}}) + "\n")
    with pytest.raises(prompts.PromptError, match=r"c\.jsonl:1: response_schema: response schema at \$: an object"):
        prompts.load_requests(prompts.expand(["c.jsonl"], tmp_path), tmp_path, None, rules)


def test_a_long_offending_value_is_cut_in_the_message() -> None:
    error = Validators().check(json.dumps("x" * 5000), {"type": "integer"}).error or ""
    assert error.startswith("the answer does not match the schema: at $: 'xxx") and error.endswith("…")
    assert len(error) < 400


def test_a_reference_to_nothing_is_refused() -> None:
    with pytest.raises(SchemaError, match="'#/\\$defs/a' points to nothing"):
        check_schema({"type": "array", "items": {"$ref": "#/$defs/a"}}, "x")
    with pytest.raises(SchemaError, match=r"'https://example\.com/s\.json' points to nothing"):
        check_schema({"$ref": "https://example.com/s.json"}, "x")
    check_schema(
        {
            "$defs": {"a/b": {"$anchor": "leaf", "type": "string"}},
            "anyOf": [{"$ref": "#/$defs/a~1b"}, {"$ref": "#leaf"}],
        },
        "x",
    )
    # Data is not a reference.
    check_schema({"enum": [{"$ref": "#/nowhere"}]}, "x")


def test_a_required_property_the_object_does_not_allow_is_refused() -> None:
    schema = {"type": "object", "properties": {"ideas": {"type": "array"}}, "required": ["idaes"]}
    check_schema(schema, "x")  # open: an answer may still carry `idaes`
    with pytest.raises(SchemaError, match=r"at \$: required property 'idaes' is not among its properties"):
        check_schema({**schema, "additionalProperties": False}, "x")
    nested = {"type": "object", "properties": {"a": {**schema, "additionalProperties": False}}}
    with pytest.raises(SchemaError, match=r"at \$\.properties\.a: required property 'idaes'"):
        check_schema(nested, "x")
