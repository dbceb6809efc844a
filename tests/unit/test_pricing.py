from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.core.pricing import PriceTable, PricingError
from batch_arbiter.core.records import Usage
from batch_arbiter.providers.registry import price_table

DAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return price_table()


def test_most_specific_glob_wins(table: PriceTable) -> None:
    assert table.rate("claude-opus-5-5", DAY).input == 4  # not the claude-opus-5* row
    assert table.rate("claude-opus-5", DAY).input == 5
    assert table.rate("gemini-2.5-flash-lite", DAY).output == 0.40
    assert table.rate("claude-haiku-4-5-20251001", DAY).output == 5


def test_dated_rows(table: PriceTable) -> None:
    assert table.rate("claude-sonnet-5-5", date(2026, 10, 6)).cache_read == 0.20
    assert table.rate("claude-sonnet-5-5", date(2026, 10, 7)).cache_read == 0.10
    assert table.rate("gemini-4-argon", date(2026, 11, 30)).input == 2
    assert table.rate("gemini-4-argon", date(2026, 12, 1)).input == 4


def test_claude_batch_is_half_of_every_category(table: PriceTable) -> None:
    u = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_creation_tokens=2_000_000,
        cache_creation_1h_tokens=1_000_000,
    )
    # Opus 5.5: input 4 + 5m write 5 + 1h write 2*4 + output 20 + cache read 0.20
    sync = table.cost("claude-opus-5-5", u, DAY, batch=False)
    assert sync == pytest.approx(4 + 5 + 8 + 20 + 0.20)
    assert table.cost("claude-opus-5-5", u, DAY, batch=True) == pytest.approx(sync / 2)


def test_gemini_batch_does_not_discount_cache_reads(table: PriceTable) -> None:
    u = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000)
    # gemini-2.5-pro: input 1.25, output 10, cache read 0.125
    assert table.cost("gemini-2.5-pro", u, DAY, batch=False) == pytest.approx(11.375)
    assert table.cost("gemini-2.5-pro", u, DAY, batch=True) == pytest.approx(11.25 / 2 + 0.125)


def test_unknown_model_lists_known(table: PriceTable) -> None:
    with pytest.raises(PricingError, match=r"known models: .*claude-opus-5-5"):
        table.rate("gpt-5", DAY)
    assert not table.knows("claude-nonexistent")
    assert "claude-fable-5-2" in table.known_models("claude-")
    assert all(m.startswith("gemini-") for m in table.known_models("gemini-"))


def test_user_pricing_file_wins_ties_and_is_validated(tmp_path: Path) -> None:
    extra = tmp_path / "prices.tsv"
    extra.write_text(
        "model_glob\teffective_from\tinput\tcache_read\tcache_write\toutput\n"
        "claude-opus-5-5*\t2026-01-01\t3\t0.1\t4\t15\n",
        encoding="utf-8",
    )
    assert price_table(extra).rate("claude-opus-5-5", DAY).input == 3
    extra.write_text("claude-x\t2026-13-01\t1\t1\t1\t1\n", encoding="utf-8")
    with pytest.raises(PricingError, match=r"prices\.tsv:1"):
        price_table(extra)
    extra.write_text("claude-x\t2026-01-01\t1\t1\n", encoding="utf-8")
    with pytest.raises(PricingError, match="expected 6 tab-separated columns"):
        price_table(extra)


def test_long_context_tier_prices_one_request_by_its_prompt_size(table: PriceTable) -> None:
    # gemini-2.5-pro: 1.25 / 10 up to 200k prompt tokens, 2.50 / 15 above (model-pricing-long-context.tsv).
    assert table.rate("gemini-2.5-pro", DAY, prompt_tokens=200_000).input == 1.25
    assert table.rate("gemini-2.5-pro", DAY, prompt_tokens=200_001).input == 2.50
    assert table.rate("gemini-3.1-pro-preview", DAY, prompt_tokens=250_000).output == 18
    assert table.rate("gemini-2.5-flash", DAY, prompt_tokens=900_000).input == 0.30  # no tier: base rate
    # Cached tokens count towards the prompt size; the tier rate then applies to every category.
    u = Usage(input_tokens=150_000, cache_read_tokens=100_000, output_tokens=10_000)
    assert table.cost("gemini-2.5-pro", u, DAY, batch=False, per_request=True) == pytest.approx(
        (150_000 * 2.50 + 100_000 * 0.25 + 10_000 * 15) / 1e6
    )
    # Totals over many requests are no prompt size: without per_request, the base rate.
    assert table.cost("gemini-2.5-pro", u, DAY, batch=False) == pytest.approx(
        (150_000 * 1.25 + 100_000 * 0.125 + 10_000 * 10) / 1e6
    )


def test_a_user_pricing_file_may_add_dated_long_context_tiers(tmp_path: Path) -> None:
    extra = tmp_path / "prices.tsv"
    extra.write_text(
        "model_glob\teffective_from\tinput\tcache_read\tcache_write\toutput\tabove_prompt_tokens\n"
        "gemini-2.5-pro*\t2026-12-01\t3\t0.3\t3\t16\t200000\n"
        "claude-haiku-5-5*\t2026-01-01\t0.50\t0.05\t0.625\t2.50\t100000\n",
        encoding="utf-8",
    )
    table = price_table(extra)
    assert table.rate("gemini-2.5-pro", date(2026, 11, 30), prompt_tokens=300_000).input == 2.50
    assert table.rate("gemini-2.5-pro", date(2026, 12, 1), prompt_tokens=300_000).input == 3
    assert table.rate("claude-haiku-5-5", DAY, prompt_tokens=100_001).output == 2.50
    assert table.rate("claude-haiku-5-5", DAY).output == 0.50
    extra.write_text("gemini-x*\t2026-01-01\t1\t1\t1\t1\tmany\n", encoding="utf-8")
    with pytest.raises(PricingError, match=r"prices\.tsv:1"):
        price_table(extra)


def test_sync_baseline_prices_cache_writes_as_a_sync_call_would_make_them(tmp_path: Path) -> None:
    from batch_arbiter.core.records import Outcome, Status, Via
    from batch_arbiter.run.results import ResultWriter

    writer = ResultWriter(tmp_path, price_table(), "claude-opus-5-5", DAY)
    usage = Usage(cache_creation_tokens=1_000_000, cache_creation_1h_tokens=1_000_000)
    result = writer.write(Outcome("a", Status.SUCCEEDED, "claude-opus-5-5", "hi", usage), "a.md", Via.BATCH)
    writer.close()
    # The batch wrote its cache for an hour (2 x input, halved); a sync call writes the 5-minute kind.
    assert result.cost_usd == pytest.approx(8.0 / 2)
    assert result.sync_cost_usd == pytest.approx(5.0)
