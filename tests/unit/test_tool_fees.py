from __future__ import annotations

import math
from datetime import date

import pytest

from batch_arbiter.core.pricing import PricingError, ToolFee, ToolFeeTable, tool_fee_table, tool_fee_unit, tool_fees_usd
from batch_arbiter.core.tools import SERVER_TOOLS

ON = date(2026, 12, 2)


def test_every_row_is_dated_and_sourced() -> None:
    rows = tool_fee_table().rows
    assert rows
    for row in rows:
        assert row.tool in SERVER_TOOLS and row.source.startswith("https://") and row.note
        assert row.read_on >= row.effective_from
        # No provider documents its batch discount on a tool fee: the table must not claim one.
        assert row.batch_discount is False


@pytest.mark.parametrize(
    ("model", "counts", "usd"),
    [
        # Anthropic: $10 per 1,000 searches; web fetch has no fee of its own.
        ("claude-sonnet-5-5", {"web-search": 3}, 0.03),
        ("claude-opus-4-8", {"web-search": 1_000, "web-fetch": 40}, 10.0),
        # Code execution by container-hour: $0.05 each.
        ("claude-haiku-4-5", {"code-execution": 2.5}, 0.125),
        # Gemini 3 family: $14 per 1,000 search queries the model runs.
        ("gemini-3.8-flash", {"web-search": 7}, 0.098),
        ("gemini-3.1-pro-preview", {"web-search": 1_000}, 14.0),
        # Gemini 2.5: $35 per 1,000 grounded prompts.
        ("gemini-2.5-pro", {"web-search": 2}, 0.07),
        ("gemini-3.8-flash", {"web-fetch": 9, "code-execution": 4}, 0.0),
        ("claude-sonnet-5-5", {}, 0.0),
        ("claude-sonnet-5-5", {"web-search": 0}, 0.0),
    ],
)
def test_fees_by_hand(model: str, counts: dict[str, float], usd: float) -> None:
    assert math.isclose(tool_fees_usd(model, counts, ON), usd, abs_tol=1e-12)


def test_the_batch_discount_is_not_applied_to_fees() -> None:
    for model in ("claude-sonnet-5-5", "gemini-3.8-flash", "gemini-2.5-flash"):
        counts = {"web-search": 10}
        assert tool_fees_usd(model, counts, ON, batch=True) == tool_fees_usd(model, counts, ON) > 0


def test_a_documented_discount_would_be_applied() -> None:
    row = ToolFee("x-*", "web-search", date(2026, 1, 1), "search", 0.02, True, "https://example.com", ON, "n")
    table = ToolFeeTable([row])
    assert tool_fees_usd("x-1", {"web-search": 10}, ON, batch=True, table=table) == pytest.approx(0.1)
    assert tool_fees_usd("x-1", {"web-search": 10}, ON, table=table) == pytest.approx(0.2)


def test_units_say_what_to_count() -> None:
    assert tool_fee_unit("claude-sonnet-5-5", "web-search", ON) == "search"
    assert tool_fee_unit("gemini-3.8-flash", "web-search", ON) == "search_query"
    assert tool_fee_unit("gemini-2.5-flash-lite", "web-search", ON) == "grounded_prompt"
    assert tool_fee_unit("claude-sonnet-5-5", "code-execution", ON) == "container_hour"
    assert tool_fee_unit("gpt-5", "web-search", ON) is None


def test_dates_pick_the_row() -> None:
    # Gemini 3 grounding was billed from 2026-01-05 on; before, no row prices it.
    assert tool_fee_unit("gemini-3.8-flash", "web-search", date(2026, 1, 4)) is None
    with pytest.raises(PricingError, match=r"no web-search fee for model 'gemini-3\.8-flash' on 2026-01-04"):
        tool_fees_usd("gemini-3.8-flash", {"web-search": 1}, date(2026, 1, 4))
    old = ToolFee("m-*", "web-search", date(2026, 1, 1), "search", 0.01, False, "https://a", ON, "n")
    new = ToolFee("m-*", "web-search", date(2026, 6, 1), "search", 0.02, False, "https://a", ON, "n")
    table = ToolFeeTable([new, old])
    assert tool_fees_usd("m-1", {"web-search": 1}, date(2026, 5, 31), table=table) == 0.01
    assert tool_fees_usd("m-1", {"web-search": 1}, date(2026, 6, 1), table=table) == 0.02


@pytest.mark.parametrize(
    ("counts", "fragment"),
    [
        ({"read": 3}, "not a server tool"),
        ({"web_search": 1}, "not a server tool"),
        ({"web-search": -1}, "not negative"),
        ({"web-search": math.nan}, "finite"),
        ({"web-search": math.inf}, "finite"),
    ],
)
def test_bad_counts_are_refused(counts: dict[str, float], fragment: str) -> None:
    with pytest.raises(PricingError, match=fragment):
        tool_fees_usd("claude-sonnet-5-5", counts, ON)


def test_a_malformed_fee_table_is_refused() -> None:
    from batch_arbiter.core.pricing import _parse_fees

    good = "claude-*\tweb-search\t2026-01-01\tsearch\t0.01\tno\thttps://x\t2026-12-02\tnote"
    assert len(_parse_fees(good, "t.tsv")) == 1
    for bad, fragment in [
        (good.replace("web-search", "bash"), "tool must be one of"),
        (good.replace("\tno\t", "\tmaybe\t"), "batch_discount yes or no"),
        (good.replace("0.01", "-1"), "non-negative"),
        (good.replace("https://x", "somewhere"), "https source"),
        (good.replace("2026-01-01", "soon"), "t.tsv:1"),
        ("claude-*\tweb-search", "expected 9"),
    ]:
        with pytest.raises(PricingError, match=fragment):
            _parse_fees(bad, "t.tsv")
