"""The emulator's structured output through the real SDKs: a schema it must refuse is refused as the APIs
refuse it, and an answer to one it takes is JSON that conforms, the same every time (unless a marker asks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import jsonschema
import pytest
from google import genai
from google.genai import errors, types

from batch_arbiter.emulator import Emulator, EmulatorConfig

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "effort": {"type": "string", "enum": ["S", "M", "L"]},
        "when": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "score": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "meta": {"$ref": "#/$defs/meta"},
    },
    "required": ["title", "effort", "when", "tags", "score", "meta"],
    "additionalProperties": False,
    "$defs": {
        "meta": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        }
    },
}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.05)) as emulator:
        yield emulator


@pytest.fixture
def claude(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def gemini(emu: Emulator) -> Iterator[genai.Client]:
    sdk = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url, timeout=10_000))
    yield sdk
    sdk.close()


def claude_text(client: anthropic.Anthropic, prompt: str, schema: dict[str, Any]) -> str:
    message = client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=1024,
        messages=[{"role": "user", "content": prompt}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    return "".join(b.text for b in message.content if b.type == "text")


def gemini_text(client: genai.Client, prompt: str, schema: dict[str, Any]) -> str:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    return client.models.generate_content(model="gemini-3.8-flash", contents=prompt, config=config).text or ""


def test_anthropic_answers_conform_and_repeat(claude: anthropic.Anthropic) -> None:
    text = claude_text(claude, "An idea for the CLI", SCHEMA)
    jsonschema.validate(json.loads(text), SCHEMA)
    assert claude_text(claude, "An idea for the CLI", SCHEMA) == text


def test_gemini_answers_conform_and_repeat(gemini: genai.Client) -> None:
    text = gemini_text(gemini, "An idea for the CLI", SCHEMA)
    jsonschema.validate(json.loads(text), SCHEMA)
    assert gemini_text(gemini, "An idea for the CLI", SCHEMA) == text


def test_markers_ask_for_an_answer_that_does_not_conform(claude: anthropic.Anthropic, gemini: genai.Client) -> None:
    for text in (
        claude_text(claude, "x [[emulator:schema-invalid]]", SCHEMA),
        gemini_text(gemini, "x [[emulator:schema-invalid]]", SCHEMA),
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(text), SCHEMA)
    # Only a batch item breaks on this one: a synchronous call conforms.
    jsonschema.validate(json.loads(claude_text(claude, "x [[emulator:schema-invalid-batch]]", SCHEMA)), SCHEMA)
    jsonschema.validate(json.loads(gemini_text(gemini, "x [[emulator:schema-invalid-batch]]", SCHEMA)), SCHEMA)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}},  # objects must be closed
        {"type": "integer", "minimum": 1},
        {"type": "string", "maxLength": 5},
        {"type": "array", "items": {"type": "string"}, "minItems": 3},
    ],
)
def test_anthropic_refuses_what_structured_outputs_cannot_take(
    claude: anthropic.Anthropic, schema: dict[str, Any]
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude_text(claude, "x", schema)
    assert "output_config.format.schema" in str(caught.value)


def test_gemini_refuses_keywords_it_does_not_document(gemini: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gemini_text(gemini, "x", {"type": "string", "minLength": 2})
    assert caught.value.code == 400 and "minLength" in str(caught.value)
    # What it documents (bounds included) it takes, and answers within them.
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 9}}, "required": ["n"]}
    jsonschema.validate(json.loads(gemini_text(gemini, "x", schema)), schema)
