"""Provider adapters behind one interface; import only the one in use (SDK imports are slow)."""

from __future__ import annotations

from batch_arbiter.providers.base import BatchState, BatchStatus, Provider, ProviderConfig, ProviderError, RunSpec


def make_provider(name: str, config: ProviderConfig) -> Provider:
    if name == "anthropic":
        from batch_arbiter.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config)
    if name == "gemini":
        from batch_arbiter.providers.gemini import GeminiProvider

        return GeminiProvider(config)
    raise ProviderError(f"provider {name!r} is not supported; use `anthropic` or `gemini`")


__all__ = ["BatchState", "BatchStatus", "Provider", "ProviderConfig", "ProviderError", "RunSpec", "make_provider"]
