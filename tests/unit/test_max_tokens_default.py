"""The default max_tokens by effort, the catalogue's output limits and the batch cap."""

from __future__ import annotations

from batch_arbiter.core.catalog import (
    BATCH_OUTPUT_CAP,
    DEFAULT_MAX_TOKENS,
    default_max_tokens,
    offline_caps,
    output_limit,
)


def test_long_efforts_take_the_model_limit() -> None:
    for effort in ("high", "xhigh", "max"):
        assert default_max_tokens(effort, 64_000, 128_000) == (
            64_000,
            f"the model's output limit for effort {effort}",
        )


def test_other_efforts_take_8192() -> None:
    for effort in (None, "low", "medium"):
        assert default_max_tokens(effort, 128_000, 128_000) == (DEFAULT_MAX_TOKENS, "the default")
    assert DEFAULT_MAX_TOKENS == 8192


def test_capped_to_what_a_batch_allows() -> None:
    tokens, why = default_max_tokens("max", 300_000, BATCH_OUTPUT_CAP["anthropic"])
    assert tokens == 128_000 and "capped to what a batch allows" in why


def test_unknown_limit_falls_back_to_the_default() -> None:
    tokens, why = default_max_tokens("max", None, 128_000)
    assert tokens == DEFAULT_MAX_TOKENS and "unknown" in why


def test_catalogue_limits() -> None:
    assert output_limit("claude-opus-5-5") == 128_000
    assert output_limit("claude-sonnet-4-5-20250929") == 64_000
    assert output_limit("gemini-2.5-pro") == 65_536
    assert output_limit("gpt-9") is None
    caps = offline_caps("claude-haiku-4-5")
    assert caps is not None and caps.max_output_tokens == 64_000
