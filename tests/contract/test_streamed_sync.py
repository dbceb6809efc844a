"""The synchronous calls (sync mode and the fallback) stream, on both providers: a long answer is neither
refused by the SDK nor waited on through a silent connection, and a call is retried only while no answer
has started (429, 5xx before the stream, a refused connection), never once the answer was streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator, Fault
from support import ProviderProfile, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"p/a.md": "Propose a feature for the CLI.", "p/b.md": "Propose a feature for the docs."})
    return root


def streamed(provider: ProviderProfile, emulator: Emulator) -> list[bool]:
    """Whether each sync call asked for a stream, as the wire shows it."""
    calls = emulator.calls(provider.sync)
    if provider.name == "anthropic":
        return [bool(c.body and c.body.get("stream")) for c in calls]
    return [c.path.endswith(":streamGenerateContent") and c.query.get("alt") == ["sse"] for c in calls]


def test_sync_calls_stream_and_keep_the_whole_answer(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    # Effort max: max_tokens is the model's whole output limit, which a non-streamed Anthropic call refuses.
    run = provider.run(ws, emulator, prompt_files="p/*", mode="sync", model=provider.model, effort=provider.effort)
    assert run.code == 0, run.log
    assert streamed(provider, emulator) == [True, True]
    for line in run.results:
        assert (line["status"], line["via"]) == ("succeeded", "sync")
        assert line["text"].startswith(f"Emulated reply from {provider.model} to: Propose a feature for the")
        assert line["usage"]["output_tokens"] > 0 and line["usage"]["input_tokens"] > 0 and line["cost_usd"] > 0
    assert run.by_id()["p_a_md"]["stop_reason"] in ("end_turn", "STOP")


@pytest.mark.parametrize("status", [429, 503])
def test_refused_before_the_answer_is_retried(
    ws: Path, emulator: Emulator, provider: ProviderProfile, status: int
) -> None:
    emulator.config.faults = [Fault(provider.sync, status, times=2, retry_after=0.01)]
    run = provider.run(ws, emulator, prompt_files="p/*", mode="sync", max_concurrency=1)
    assert run.code == 0, run.log
    assert len(emulator.calls(provider.sync)) == 4  # two refused, then one answer per request
    assert {line["status"] for line in run.results} == {"succeeded"}


def test_a_stream_broken_after_the_answer_started_is_not_sent_again(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.faults = [Fault(provider.sync, kind="cut", after_lines=2, times=1)]
    run = provider.run(ws, emulator, prompt_files="p/*", mode="sync", max_concurrency=1)
    # The first request's answer broke off mid-stream: it may be billed, so it ends errored, sent once.
    assert len(emulator.calls(provider.sync)) == 2
    statuses = sorted(line["status"] for line in run.results)
    assert statuses == ["errored", "succeeded"]
    assert run.code == 1


def test_the_fallback_streams_too(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    emulator.config.outcomes = {"p_b_md": "errored"}
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert streamed(provider, emulator) == [True]
    assert run.by_id()["p_b_md"]["via"] == "sync" and run.by_id()["p_b_md"]["status"] == "succeeded"


def test_stop_reasons_arrive_through_the_stream(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"p/cut.md": "[[emulator:max-tokens]] more", "p/no.md": "[[emulator:refusal]] no"})
    run = provider.run(ws, emulator, prompt_files="p/*", mode="sync")
    by = run.by_id()
    assert by["p_cut_md"]["status"] == "incomplete" and by["p_cut_md"]["text"]
    assert by["p_no_md"]["status"] == "errored" and by["p_no_md"]["stop_reason"] in ("refusal", "SAFETY")
    assert len(emulator.calls(provider.sync)) == 2
