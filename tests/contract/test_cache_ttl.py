"""The 1-hour cache TTL a batch asks for, read back from what the API wrote (Anthropic's usage.cache_creation).
Gemini has no TTL tier to ask for (its caching is implicit), so these scenarios are Anthropic's alone."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.core.records import Usage
from batch_arbiter.emulator import Emulator
from batch_arbiter.providers.anthropic import _message_outcome
from batch_arbiter.providers.registry import price_table
from support import ANTHROPIC, write_prompts

SYSTEM = "You are a product analyst. " * 400
MODEL = "claude-sonnet-5-5"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "Idea A.", "prompts/b.md": "Idea B.", "system.md": SYSTEM})
    return root


def _run(ws: Path, emulator: Emulator) -> tuple[list[Usage], str, str]:
    run = ANTHROPIC.run(
        ws, emulator, prompt_files="prompts/*", system_prompt_file="system.md", mode="batch", model=MODEL
    )
    assert run.code == 0, run.log
    usages = [Usage(**r["usage"]) for r in run.results]
    return usages, run.log, run.summary


def test_one_hour_writes_are_read_back_and_priced_at_the_one_hour_rate(ws: Path, emulator: Emulator) -> None:
    usages, log, _ = _run(ws, emulator)
    written = [u for u in usages if u.cache_creation_tokens]
    assert written and all(u.cache_creation_1h_tokens == u.cache_creation_tokens for u in written)
    assert "5-minute TTL" not in log


def test_five_minute_writes_where_one_hour_was_asked_warn_once_and_are_priced_as_billed(
    ws: Path, emulator: Emulator
) -> None:
    emulator.config.anthropic_cache_1h = False
    usages, log, summary = _run(ws, emulator)
    written = [u for u in usages if u.cache_creation_tokens]
    assert written and all(u.cache_creation_1h_tokens == 0 for u in written)
    assert log.count("wrote") == 1 and "5-minute TTL" in log
    assert "5-minute TTL" in summary
    # Priced at the 5-minute write rate (1.25x input), not the 1-hour one (2x) that was asked for.
    rate = price_table().rate(MODEL, date.today())
    one = written[0]
    as_billed = price_table().cost(MODEL, one, date.today(), batch=True, per_request=True)
    as_asked = price_table().cost(
        MODEL,
        Usage(
            one.input_tokens,
            one.output_tokens,
            one.cache_read_tokens,
            one.cache_creation_tokens,
            one.cache_creation_tokens,
        ),
        date.today(),
        batch=True,
        per_request=True,
    )
    assert as_asked - as_billed == pytest.approx(one.cache_creation_tokens * (2 * rate.input - rate.cache_write) / 2e6)


def test_writes_without_a_breakdown_are_taken_at_the_ttl_asked_for() -> None:
    usage: dict[str, object] = {"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 900}
    message = {"content": [], "usage": usage}
    assert _message_outcome("a", message, asked_ttl="1h").usage.cache_creation_1h_tokens == 900
    assert _message_outcome("a", message, asked_ttl="5m").usage.cache_creation_1h_tokens == 0
    split = {**usage, "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 300}}
    assert _message_outcome("a", {"usage": split}, asked_ttl="1h").usage.cache_creation_1h_tokens == 300


def test_the_fallback_warning_is_given_once_per_run() -> None:
    from batch_arbiter.providers import ProviderConfig
    from batch_arbiter.providers.anthropic import AnthropicProvider

    events: list[str] = []
    provider = AnthropicProvider(ProviderConfig(api_key="k", base_url="http://127.0.0.1:9", on_event=events.append))
    try:
        for _ in range(3):
            provider._check_cache_ttl(Usage(cache_creation_tokens=800, cache_creation_1h_tokens=0))
        provider._check_cache_ttl(Usage(cache_creation_tokens=800, cache_creation_1h_tokens=800))
    finally:
        provider.close()
    assert len(events) == 1 and "800 tokens with the 5-minute TTL" in events[0]
