"""Cost estimates before anything is submitted: for `budget-usd` and `batch-arbiter plan`."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from batch_arbiter.core.pricing import PriceTable
from batch_arbiter.core.records import PromptRequest, Usage
from batch_arbiter.providers.base import Provider, RunSpec

# Counting every request of a 100k batch would take longer than the batch is worth; a sample
# calibrates the characters-per-token ratio for the rest.
COUNT_SAMPLE = 50
# The documented fallback when no counting endpoint answers: about four characters per token.
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A run's cost before submitting, output at its ceiling: tokens, both prices, and how input was counted."""

    input_tokens: int
    max_output_tokens: int
    batch_usd: float
    sync_usd: float
    method: str

    def for_mode(self, mode: str) -> float:
        """The estimate for the mode the run takes: the batch price for `batch`, the sync price otherwise."""
        return self.batch_usd if mode == "batch" else self.sync_usd


def _chars(request: PromptRequest) -> int:
    return request.text_bytes()


def estimate(
    requests: Sequence[PromptRequest], provider: Provider | None, spec: RunSpec, prices: PriceTable, on: date
) -> Estimate:
    """Input tokens counted (or estimated), output at its ceiling: every request uses max_tokens."""
    sample = list(requests[:COUNT_SAMPLE])
    counted: list[int | None] = []
    if provider is not None and sample:
        with ThreadPoolExecutor(max_workers=8) as pool:
            counted = list(pool.map(lambda r: provider.count_tokens(r, spec), sample))
    if counted and all(c is not None for c in counted):
        exact = [c for c in counted if c is not None]
        ratio = (sum(_chars(r) for r in sample) or 1) / max(sum(exact), 1)
        per_request = exact + [round(_chars(r) / ratio) for r in requests[COUNT_SAMPLE:]]
        method = "counted" if len(requests) <= COUNT_SAMPLE else f"counted for {len(sample)}, scaled for the rest"
    else:
        per_request = [round(_chars(r) / CHARS_PER_TOKEN) + 1 for r in requests]
        method = f"estimated at {CHARS_PER_TOKEN:g} characters per token"
    batch_usd = sync_usd = 0.0
    output = 0
    # Priced request by request: a long prompt may fall in a model's long-context tier.
    for request, tokens in zip(requests, per_request, strict=True):
        usage = Usage(input_tokens=tokens, output_tokens=request.max_tokens or spec.max_tokens)
        output += usage.output_tokens
        batch_usd += prices.cost(spec.model, usage, on, batch=True, per_request=True)
        sync_usd += prices.cost(spec.model, usage, on, batch=False, per_request=True)
    return Estimate(
        input_tokens=sum(per_request),
        max_output_tokens=output,
        batch_usd=batch_usd,
        sync_usd=sync_usd,
        method=method,
    )
