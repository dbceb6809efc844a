"""Every provider the action speaks to, as data: the one list to extend when a provider is added.

Reading the registry imports no SDK (adapters are imported by `make_provider` only), so the savings
audit and `plan` can ask which provider serves a model without paying an SDK's start-up time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from batch_arbiter.core.pricing import PriceRules, PriceTable
from batch_arbiter.core.prompts import ContentRules
from batch_arbiter.core.structured import SchemaRules
from batch_arbiter.errors import InputError
from batch_arbiter.providers.base import Provider, ProviderConfig
from batch_arbiter.providers.schemas import anthropic_schema_problem, gemini_schema_problem

__all__ = [
    "REGISTRY",
    "ProviderInfo",
    "api_key_from",
    "info",
    "info_for_engine",
    "info_for_model",
    "make_provider",
    "price_table",
]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the rest of the action may know of a provider, without importing its SDK."""

    name: str
    # The model a run uses when neither the `model` input nor the policy names one.
    default_model: str
    # Environment variables that may hold the API key, in the order they are tried.
    key_variables: tuple[str, ...]
    # The id prefix of every model the provider serves.
    model_prefix: str
    # The `engine` field of a token-metrics record (the origin's layout names CLIs, not providers).
    engine: str
    price_rules: PriceRules
    # The content block types a request may carry; None: any (the API checks them itself).
    block_types: frozenset[str] | None
    # "module:Class" of the adapter, imported on first use.
    adapter: str
    # Why the provider's structured output cannot take a response schema (None: it can).
    schema_rules: SchemaRules | None = None
    # Why a model cannot take tools and a response schema in one request (None: it can).
    tools_with_schema: Callable[[str], str | None] | None = None

    @property
    def content_rules(self) -> ContentRules:
        """What a prompt file may hold for this provider."""
        return ContentRules(self.name, self.block_types, self.schema_rules)

    def owns(self, model: str) -> bool:
        """Whether `model` is one of this provider's ids."""
        return model.startswith(self.model_prefix)


def gemini_tools_with_schema(model: str) -> str | None:
    """Gemini 2 refuses function calling (or any tool) beside a JSON response (400 "Function calling with a
    response mime type: 'application/json' is unsupported"); Gemini 3 and later combine them."""
    if model.startswith("gemini-2.") or model.startswith("gemini-1."):
        return f"{model} takes no tools together with a response schema (Gemini 3 and later do)"
    return None


REGISTRY: Mapping[str, ProviderInfo] = {
    "anthropic": ProviderInfo(
        name="anthropic",
        default_model="claude-sonnet-5-5",
        key_variables=("ANTHROPIC_API_KEY",),
        model_prefix="claude-",
        engine="claude",
        # A 1-hour cache write costs twice the input rate; batch cache reads are half price as well.
        price_rules=PriceRules("claude-", cache_write_1h_multiplier=2.0, batch_discounts_cache_reads=True),
        block_types=None,
        adapter="batch_arbiter.providers.anthropic:AnthropicProvider",
        schema_rules=anthropic_schema_problem,
    ),
    "gemini": ProviderInfo(
        name="gemini",
        default_model="gemini-3.8-flash",
        key_variables=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        model_prefix="gemini-",
        engine="gemini",
        # No 1-hour write tier; a cache hit inside a batch is priced like any cache hit.
        price_rules=PriceRules("gemini-", cache_write_1h_multiplier=1.0, batch_discounts_cache_reads=False),
        # The adapter builds Gemini parts from text blocks only.
        block_types=frozenset({"text"}),
        adapter="batch_arbiter.providers.gemini:GeminiProvider",
        schema_rules=gemini_schema_problem,
        tools_with_schema=gemini_tools_with_schema,
    ),
}


def info(name: str) -> ProviderInfo:
    """The provider called `name`, or bad input naming the ones there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        names = " or ".join(f"`{n}`" for n in REGISTRY)
        raise InputError(f"input `provider`: {name} is not supported; use {names}", input="provider") from None


def info_for_model(model: str) -> ProviderInfo | None:
    """The provider that serves `model`, if any does."""
    return next((p for p in REGISTRY.values() if p.owns(model)), None)


def info_for_engine(engine: str) -> ProviderInfo | None:
    """The provider behind a token-metrics record's `engine`."""
    return next((p for p in REGISTRY.values() if engine in (p.engine, p.name)), None)


def api_key_from(provider: ProviderInfo, given: str | None, env: Mapping[str, str]) -> str | None:
    """The key a run uses: the `api-key` input, else the first of the provider's variables that is set."""
    return given or next((env[v] for v in provider.key_variables if env.get(v)), None)


def price_table(extra: Path | None = None) -> PriceTable:
    """The bundled prices (plus a user's pricing file), with every provider's billing rules."""
    return PriceTable.load(extra, rules=[p.price_rules for p in REGISTRY.values()])


def make_provider(name: str, config: ProviderConfig) -> Provider:
    """A connected adapter for `name`; only now is its SDK imported."""
    module, _, cls = info(name).adapter.partition(":")
    adapter = getattr(importlib.import_module(module), cls)
    return cast(Provider, adapter(config))
