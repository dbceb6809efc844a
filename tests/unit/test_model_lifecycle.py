"""Model lifecycle: announced retirements refuse a model from their date, the upgrade ranks only live models,
and the offline table agrees with the Anthropic SDK's own list of deprecated models."""

from __future__ import annotations

import re
from datetime import date, datetime

from anthropic.resources.messages.messages import DEPRECATED_MODELS

from batch_arbiter.core.catalog import base_model, catalogued_models, is_live, offline_lifecycle
from batch_arbiter.core.policy import upgrade_model
from batch_arbiter.providers.registry import price_table


def test_gemini_2_5_pro_and_flash_retire_on_december_first_and_flash_lite_does_not() -> None:
    assert offline_lifecycle("gemini-2.5-pro", date(2026, 11, 30)).state == "deprecated"
    retired = offline_lifecycle("gemini-2.5-pro", date(2026, 12, 1))
    assert (retired.state, retired.retires_on, retired.replacement) == (
        "retired",
        date(2026, 12, 1),
        "gemini-3.8-flash",
    )
    assert offline_lifecycle("gemini-2.5-flash", date(2026, 12, 1)).replacement == "gemini-3.5-flash-lite"
    assert offline_lifecycle("gemini-2.5-flash-lite", date(2026, 12, 1)).state == "active"
    assert is_live("gemini-3.8-flash", date(2026, 12, 1))


def test_a_retired_model_is_billed_at_its_replacements_rates_from_its_retirement() -> None:
    table = price_table()
    assert table.rate("gemini-2.5-pro", date(2026, 11, 30)).output == 10
    assert table.rate("gemini-2.5-pro", date(2026, 12, 1)) == table.rate("gemini-3.8-flash", date(2026, 12, 1))
    assert table.rate("gemini-2.5-pro", date(2027, 1, 1)) == table.rate("gemini-3.8-flash", date(2027, 1, 1))
    above = table.rate("gemini-2.5-pro", date(2026, 12, 1), prompt_tokens=300_000)
    assert above == table.rate("gemini-3.8-flash", date(2026, 12, 1), prompt_tokens=300_000)


def test_the_upgrade_never_lands_on_a_model_that_is_not_live() -> None:
    table = price_table()
    for day in (date(2026, 11, 30), date(2026, 12, 2)):
        # gemini-2.5-flash's batch price is under 3.5 Flash-Lite's sync price, but it is deprecated, then retired.
        assert upgrade_model("gemini", "gemini-3.5-flash-lite", table, day).model == "gemini-3.5-flash-lite"
    assert upgrade_model("gemini", "gemini-3.5-flash", table, date(2026, 12, 2)).model == "gemini-4-hydrogen"


def _sdk_date(text: str) -> date:
    # "November 30th, 2026"
    return datetime.strptime(re.sub(r"(\d+)(st|nd|rd|th)", r"\1", text), "%B %d, %Y").date()


def test_the_offline_table_knows_every_deprecation_the_anthropic_sdk_lists_for_a_catalogued_model() -> None:
    catalogued = set(catalogued_models())
    listed = {base_model(m): _sdk_date(d) for m, d in DEPRECATED_MODELS.items() if base_model(m) in catalogued}
    assert listed, "the SDK's list no longer names a catalogued model: recheck this test"
    for model, end in listed.items():
        assert model is not None
        assert offline_lifecycle(model, end).state == "retired", model
        assert offline_lifecycle(model, end).retires_on == end, model
