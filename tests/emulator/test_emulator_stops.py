"""How the emulator's answers stop, as the real SDKs parse them: a `max_tokens` stop and a refusal, in a sync
call and in a batch, on both APIs (Anthropic `stop_reason`/`stop_details`, Gemini `finishReason` and
`promptFeedback`)."""

from __future__ import annotations

import time
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


@pytest.fixture
def claude(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="k", base_url=emu.base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def gemini(emu: Emulator) -> Iterator[genai.Client]:
    # v1beta, as the adapter pins it: the Batch API is not served under the SDK's default v1.
    options = types.HttpOptions(base_url=emu.base_url, api_version="v1beta")
    sdk = genai.Client(api_key="k", vertexai=False, http_options=options)
    yield sdk
    sdk.close()


def test_anthropic_max_tokens_marker_cuts_the_answer(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE, max_tokens=500, messages=[{"role": "user", "content": "[[emulator:max-tokens]] go on"}]
    )
    assert message.stop_reason == "max_tokens"
    # Every allowed token billed, and the text so far kept.
    assert message.usage.output_tokens == 500
    assert message.content[0].type == "text" and message.content[0].text


def test_anthropic_refusal_is_a_message_with_stop_details(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE, max_tokens=500, messages=[{"role": "user", "content": "[[emulator:refusal]] do harm"}]
    )
    assert message.stop_reason == "refusal"
    assert message.content == []
    assert message.stop_details is not None and message.stop_details.type == "refusal"
    assert message.usage.output_tokens > 0


def test_anthropic_batch_carries_the_stop_reasons(claude: anthropic.Anthropic) -> None:
    texts = {"cut": "[[emulator:max-tokens]] a", "refused": "[[emulator:refusal]] b", "fine": "c"}
    batch = claude.messages.batches.create(
        requests=[
            {
                "custom_id": cid,
                "params": {"model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": text}]},
            }
            for cid, text in texts.items()
        ]
    )
    while claude.messages.batches.retrieve(batch.id).processing_status != "ended":
        time.sleep(0.02)
    ended = claude.messages.batches.retrieve(batch.id)
    # A refusal is a succeeded request: the API answered it.
    assert ended.request_counts.succeeded == 3
    stops = {}
    for item in claude.messages.batches.results(batch.id):
        assert item.result.type == "succeeded"
        stops[item.custom_id] = item.result.message.stop_reason
    assert stops == {"cut": "max_tokens", "refused": "refusal", "fine": "end_turn"}


def test_gemini_max_tokens_marker_and_safety_block(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=300)
    cut = gemini.models.generate_content(model=GEMINI, contents="[[emulator:max-tokens]] go on", config=config)
    assert cut.candidates and cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert cut.text and cut.usage_metadata and cut.usage_metadata.candidates_token_count == 300

    refused = gemini.models.generate_content(model=GEMINI, contents="[[emulator:refusal]] do harm", config=config)
    assert refused.candidates and refused.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert refused.candidates[0].content is None and refused.text is None
    ratings = refused.candidates[0].safety_ratings or []
    assert any(r.blocked for r in ratings)

    blocked = gemini.models.generate_content(model=GEMINI, contents="[[emulator:prompt-blocked]] x", config=config)
    assert not blocked.candidates
    assert blocked.prompt_feedback and blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY


def test_gemini_batch_carries_the_finish_reasons(gemini: genai.Client) -> None:
    texts = {"cut": "[[emulator:max-tokens]] a", "refused": "[[emulator:refusal]] b", "fine": "c"}
    job = gemini.batches.create(
        model=GEMINI,
        src=[
            types.InlinedRequest(
                contents=text, metadata={"key": key}, config=types.GenerateContentConfig(max_output_tokens=64)
            )
            for key, text in texts.items()
        ],
    )
    assert job.name
    while not (job := gemini.batches.get(name=job.name)).done:
        time.sleep(0.02)
    assert job.dest and job.dest.inlined_responses
    finish = {}
    for item in job.dest.inlined_responses:
        assert item.response and item.response.candidates and item.metadata
        finish[item.metadata["key"]] = item.response.candidates[0].finish_reason
    assert finish == {
        "cut": types.FinishReason.MAX_TOKENS,
        "refused": types.FinishReason.SAFETY,
        "fine": types.FinishReason.STOP,
    }


def test_max_tokens_above_the_models_limit_is_refused(claude: anthropic.Anthropic, gemini: genai.Client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="maximum allowed number of output tokens"):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=64_001, messages=[{"role": "user", "content": "hi"}], timeout=60
        )
    assert claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64_000, messages=[{"role": "user", "content": "hi"}], timeout=60
    ).content
    with pytest.raises(genai.errors.ClientError, match="maxOutputTokens value of 65537"):
        gemini.models.generate_content(
            model=GEMINI, contents="hi", config=types.GenerateContentConfig(max_output_tokens=65_537)
        )
