"""Streamed answers as the real SDKs read them: Anthropic server-sent events (`messages.stream`) and Gemini
`streamGenerateContent?alt=sse` (`generate_content_stream`), the same answer as the unstreamed call."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import anthropic
import pytest
from google import genai
from google.genai import types

from batch_arbiter.emulator import Emulator, EmulatorConfig

CLAUDE = "claude-sonnet-5-5"
GEMINI = "gemini-3.8-flash"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.05)) as emulator:
        yield emulator


def test_anthropic_stream_events_build_the_same_message(emu: Emulator) -> None:
    with anthropic.Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as client:
        params = {"model": CLAUDE, "max_tokens": 512, "messages": [{"role": "user", "content": "stream this"}]}
        whole = client.messages.create(**params)  # type: ignore[call-overload]
        with client.messages.stream(**params) as stream:  # type: ignore[arg-type]
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == whole.content[0].text
    assert final.stop_reason == whole.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    call = emu.calls("messages")[-1]
    assert call.body["stream"] is True


def test_anthropic_stream_carries_a_refusal(emu: Emulator) -> None:
    with (
        anthropic.Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as client,
        client.messages.stream(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "[[emulator:refusal]] x"}]
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "refusal" and final.content == []
    assert final.stop_details is not None and final.stop_details.type == "refusal"


def test_gemini_stream_chunks_add_up_to_the_answer(emu: Emulator) -> None:
    client = genai.Client(api_key="k", vertexai=False, http_options=types.HttpOptions(base_url=emu.base_url))
    config = types.GenerateContentConfig(max_output_tokens=512)
    whole = client.models.generate_content(model=GEMINI, contents="stream this", config=config)
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="stream this", config=config))
    client.close()
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == whole.text
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[0].candidates and chunks[0].candidates[0].finish_reason is None
    assert last.usage_metadata and whole.usage_metadata
    assert last.usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count
    call = emu.calls("gemini_generate")[-1]
    assert call.path.endswith(":streamGenerateContent") and call.query["alt"] == ["sse"]


def test_gemini_stream_without_sse_is_one_json_array(emu: Emulator) -> None:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    request = urllib.request.Request(
        f"{emu.base_url}/v1beta/models/{GEMINI}:streamGenerateContent",
        data=body,
        method="POST",
        headers={"x-goog-api-key": "k", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        chunks = json.loads(answer.read())
    assert isinstance(chunks, list) and len(chunks) > 1
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
