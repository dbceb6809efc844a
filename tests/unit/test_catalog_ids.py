"""Every model id the product names is one the real API serves, as the installed SDKs list them: a
catalogue row, a price row or a default that the API would answer with 404 fails here, not in a real run."""

from __future__ import annotations

from typing import get_args

import pytest
from anthropic.types.model import Model as AnthropicModel
from google.genai._gaos.types.interactions.model import Model as GeminiModel

from batch_arbiter.core.catalog import RANKING, catalogued_models
from batch_arbiter.providers.registry import REGISTRY, price_table


def _literals(alias: object) -> set[str]:
    # Union[Literal[...], str]: the Literal part is the SDK's list of served ids.
    found: set[str] = set()
    for arg in get_args(alias):
        found.update(a for a in get_args(arg) if isinstance(a, str))
    return found


SDK_IDS = {"anthropic": _literals(AnthropicModel), "gemini": _literals(GeminiModel)}


def test_the_sdk_lists_are_read() -> None:
    # Guards the reading above: an SDK that changes how it spells its list must not pass this by emptiness.
    assert "claude-sonnet-5-5" in SDK_IDS["anthropic"]
    assert "gemini-3.1-pro-preview" in SDK_IDS["gemini"]
    assert "gemini-3.1-pro" not in SDK_IDS["gemini"]


@pytest.mark.parametrize("provider", sorted(RANKING))
def test_ranked_and_catalogued_models_are_served(provider: str) -> None:
    prefix = REGISTRY[provider].model_prefix
    named = set(RANKING[provider]) | {m for m in catalogued_models() if m.startswith(prefix)}
    assert named - SDK_IDS[provider] == set()


@pytest.mark.parametrize("provider", sorted(REGISTRY))
def test_priced_models_and_defaults_are_served(provider: str) -> None:
    vendor = REGISTRY[provider]
    priced = set(price_table().known_models(vendor.model_prefix))
    assert priced - SDK_IDS[provider] == set()
    assert vendor.default_model in SDK_IDS[provider]
