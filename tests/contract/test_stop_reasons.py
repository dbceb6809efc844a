"""How an answer stopped, read from both providers in a batch and in a sync call: cut short at the output
limit (`incomplete`, text kept), or refused (`errored` with the reason, never rerun synchronously)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator
from support import PROVIDERS, ProviderProfile, write_prompts

CUT = "[[emulator:max-tokens]] Propose a long feature."
REFUSED = "[[emulator:refusal]] Propose a forbidden feature."
PROMPTS = {
    "prompts/fine.md": "Propose a feature for the CLI.",
    "prompts/cut.md": CUT,
    "prompts/refused.md": REFUSED,
}
# The reason each provider's wire gives.
STOPS = {
    "anthropic": {"fine": "end_turn", "cut": "max_tokens", "refused": "refusal"},
    "gemini": {"fine": "STOP", "cut": "MAX_TOKENS", "refused": "SAFETY"},
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, PROMPTS)
    return root


@pytest.mark.parametrize("mode", ["batch", "sync"])
def test_cut_short_is_incomplete_and_refused_is_errored_not_rerun(
    ws: Path, emulator: Emulator, provider: ProviderProfile, mode: str
) -> None:
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode=mode, timeout_minutes=10)
    by = run.by_id()
    stops = STOPS[provider.name]
    fine, cut, refused = by["prompts_fine_md"], by["prompts_cut_md"], by["prompts_refused_md"]
    assert (fine["status"], fine["stop_reason"]) == ("succeeded", stops["fine"])
    assert (cut["status"], cut["stop_reason"]) == ("incomplete", stops["cut"])
    assert (refused["status"], refused["stop_reason"]) == ("errored", stops["refused"])
    # The cut answer's text is kept, on its line and as its answer file, and it was paid for.
    assert cut["text"] and "Emulated reply" in cut["text"]
    assert (ws / "batch-results" / "prompts_cut_md.md").read_text() == cut["text"]
    assert cut["cost_usd"] > 0 and cut["usage"]["output_tokens"] > 0
    assert not (ws / "batch-results" / "prompts_refused_md.md").exists()
    assert refused["error"] and ("refus" in refused["error"] or "SAFETY" in refused["error"])
    # Nothing is rerun: one call per request in sync mode, none at all after a batch.
    expected_sync = 3 if mode == "sync" else 0
    assert len(emulator.calls(provider.sync)) == expected_sync
    assert all(r["via"] == mode for r in run.results)
    out = run.outputs
    assert (out["status"], out["succeeded"], out["incomplete"], out["failed"]) == ("partial", "1", "1", "1")
    assert "1 incomplete" in run.summary
    assert run.log.count("::warning title=batch-arbiter%3A incomplete answers::1 of 3 answers were cut short") == 1
    # The refusal failed the step; the cut answer alone would not have.
    assert run.code == 1


def test_only_cut_short_answers_leave_the_step_green(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    (ws / "prompts/refused.md").unlink()
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert (run.outputs["status"], run.outputs["incomplete"], run.outputs["failed"]) == ("partial", "1", "0")
    assert emulator.calls(provider.sync) == []
    assert "stopped at the output limit" in run.summary


def test_gemini_prompt_blocked_before_any_candidate_is_errored_not_rerun(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"p/blocked.md": "[[emulator:prompt-blocked]] anything"})
    gemini = PROVIDERS["gemini"]
    run = gemini.run(ws, emulator, prompt_files="p/*", mode="batch", timeout_minutes=10)
    line = run.by_id()["p_blocked_md"]
    assert (line["status"], line["stop_reason"]) == ("errored", "SAFETY")
    assert line["error"] == "prompt blocked: SAFETY"
    assert emulator.calls(gemini.sync) == []
