"""Every price row names its source and the date that source was read (model-pricing-sources.tsv), and the
three rows once in dispute hold the rates the providers' pages give."""

from __future__ import annotations

import csv
import re
from datetime import date
from importlib import resources

import pytest

from batch_arbiter.core.records import Usage
from batch_arbiter.providers.registry import price_table

DATA = resources.files("batch_arbiter").joinpath("core/data")


def _rows(name: str) -> list[list[str]]:
    text = DATA.joinpath(name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.reader(lines[1:], delimiter="\t"))


def _keys() -> set[tuple[str, str, str, str]]:
    keys = {("model-pricing.tsv", r[0], r[1], "") for r in _rows("model-pricing.tsv")}
    keys |= {("model-pricing-long-context.tsv", r[0], r[1], r[6]) for r in _rows("model-pricing-long-context.tsv")}
    return keys


def test_every_price_row_has_exactly_one_source_line_and_no_line_is_orphaned() -> None:
    sources = _rows("model-pricing-sources.tsv")
    keyed = [tuple(r[:4]) for r in sources]
    assert len(keyed) == len(set(keyed))
    assert set(keyed) == _keys()


def test_every_source_line_names_a_source_and_a_read_date() -> None:
    for table, glob, _, _, source, read_on in _rows("model-pricing-sources.tsv"):
        assert source.strip(), (table, glob)
        assert re.fullmatch(r"2026-(0[1-9]|1[0-2])(-[0-3]\d)?", read_on), (table, glob, read_on)
        if len(read_on) == 10:
            assert date.fromisoformat(read_on) <= date(2026, 12, 31)


def test_haiku_5_5_above_100k_prompt_tokens_costs_the_long_prompt_rates() -> None:
    table = price_table()
    day = date(2026, 12, 2)
    assert table.rate("claude-haiku-5-5", day, prompt_tokens=100_000).input == 0.10
    above = table.rate("claude-haiku-5-5", day, prompt_tokens=100_001)
    assert (above.input, above.cache_read, above.cache_write, above.output) == (0.50, 0.05, 0.625, 2.50)
    # A 1-hour write above the threshold: 2 x $0.50 = $1.00 per MTok, as the pricing page lists.
    usage = Usage(cache_creation_tokens=1_000_000, cache_creation_1h_tokens=1_000_000, input_tokens=1)
    assert table.cost("claude-haiku-5-5", usage, day, batch=False, per_request=True) == pytest.approx(1.0, abs=1e-5)


def test_the_disputed_cache_read_rates() -> None:
    table = price_table()
    assert table.rate("gemini-4-hydrogen", date(2026, 12, 2)).cache_read == 0.075
    assert table.rate("claude-sonnet-5-5", date(2026, 10, 6)).cache_read == 0.20
    assert table.rate("claude-sonnet-5-5", date(2026, 10, 7)).cache_read == 0.10
