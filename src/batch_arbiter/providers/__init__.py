"""Provider adapters behind one interface; import only the one in use (SDK imports are slow)."""

from __future__ import annotations

from batch_arbiter.errors import ProviderError
from batch_arbiter.providers.base import BatchState, BatchStatus, Provider, ProviderConfig, RunSpec
from batch_arbiter.providers.registry import REGISTRY, ProviderInfo, info, info_for_model, make_provider, price_table

__all__ = [
    "REGISTRY",
    "BatchState",
    "BatchStatus",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderInfo",
    "RunSpec",
    "info",
    "info_for_model",
    "make_provider",
    "price_table",
]
