"""Provider adapters behind one interface; import only the one in use (SDK imports are slow)."""

from __future__ import annotations

from batch_arbiter.providers.base import BatchState, BatchStatus, Provider, ProviderConfig, ProviderError, RunSpec


def make_provider(name: str, config: ProviderConfig) -> Provider:
    if name == "anthropic":
        from batch_arbiter.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config)
    raise ProviderError(f"provider {name!r} is not supported yet; use `anthropic`")


__all__ = ["BatchState", "BatchStatus", "Provider", "ProviderConfig", "ProviderError", "RunSpec", "make_provider"]
