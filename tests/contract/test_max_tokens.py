"""The default `max-tokens` follows the effort: the model's own output limit at high, xhigh and max (thinking
counts against it), 8192 otherwise; an explicit input wins. Both providers, as the batch carries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator
from support import ProviderProfile, write_prompts

# The output limit each provider's model answers with (Anthropic's models endpoint, Gemini's catalogue).
LIMITS = {"anthropic": 128_000, "gemini": 65_536}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"p/a.md": "Propose a feature."})
    return root


def sent_max_tokens(provider: ProviderProfile, emulator: Emulator) -> int:
    request = provider.batch_requests(emulator)[0]
    if provider.name == "anthropic":
        return int(request["max_tokens"])
    return int(request["generationConfig"]["maxOutputTokens"])


def test_high_effort_defaults_to_the_models_output_limit(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", model=provider.model, effort=provider.effort)
    assert run.code == 0, run.log
    assert sent_max_tokens(provider, emulator) == LIMITS[provider.name]
    assert f"| Max tokens | {LIMITS[provider.name]:,} per request (the model's output limit for effort" in run.summary


def test_low_effort_and_none_default_to_8192(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", model=provider.model, effort="low")
    assert run.code == 0, run.log
    assert sent_max_tokens(provider, emulator) == 8192
    assert "| Max tokens | 8,192 per request (the default) |" in run.summary


def test_the_input_wins(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(
        ws, emulator, prompt_files="p/*", mode="batch", model=provider.model, effort=provider.effort, max_tokens=3000
    )
    assert run.code == 0, run.log
    assert sent_max_tokens(provider, emulator) == 3000
    assert "| Max tokens | 3,000 per request (the max-tokens input) |" in run.summary


def test_plan_says_which_max_tokens_it_counts(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="p/*", mode="plan", model=provider.model, effort="max")
    assert run.code == 0, run.log
    assert f"| Max tokens | {LIMITS[provider.name]:,} per request" in run.summary
