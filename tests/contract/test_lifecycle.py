"""A model's lifecycle as the provider reports it (Anthropic's models endpoint) or as announced (Gemini's
deprecations): retired models are refused before anything is paid for, deprecated ones run with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator
from support import ANTHROPIC, GEMINI, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "Idea A.", "prompts/b.md": "Idea B."})
    return root


def test_a_model_the_endpoint_calls_retired_is_refused_with_only_the_lookup_made(ws: Path, emulator: Emulator) -> None:
    emulator.config.model_lifecycle = {"claude-opus-4-8": "retired"}
    run = ANTHROPIC.run(ws, emulator, prompt_files="prompts/*", mode="batch", model="claude-opus-4-8")
    assert run.code == 2
    assert "::error" in run.log and "claude-opus-4-8 was retired" in run.log and "Anthropic models endpoint" in run.log
    assert {c.route for c in emulator.calls()} == {"models"}


def test_the_emulator_refuses_a_retired_model_as_the_api_does(ws: Path, emulator: Emulator) -> None:
    # The same refusal from the API itself, for a client that does not look the model up first.
    import anthropic

    emulator.config.model_lifecycle = {"claude-opus-4-8": "retired"}
    client = anthropic.Anthropic(api_key="k", base_url=emulator.base_url, max_retries=0)
    try:
        info = client.models.retrieve("claude-opus-4-8")
        assert (info.lifecycle, info.retires_at) == ("retired", None) and info.deprecated_at is not None
        with pytest.raises(anthropic.NotFoundError, match="retired"):
            client.messages.create(model="claude-opus-4-8", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    finally:
        client.close()


def test_a_deprecated_model_runs_with_a_warning_naming_its_end(ws: Path, emulator: Emulator) -> None:
    # claude-sonnet-4-5: deprecated, due to retire on 2026-11-30 (the SDK's DEPRECATED_MODELS); the endpoint
    # still says deprecated, which is what decides: the run goes ahead and says the retirement is overdue.
    run = ANTHROPIC.run(ws, emulator, prompt_files="prompts/*", mode="batch", model="claude-sonnet-4-5")
    assert run.code == 0, run.log
    assert "::warning" in run.log and "claude-sonnet-4-5 is deprecated" in run.log
    assert "2026-11-30" in run.log and "overdue" in run.log
    assert len(emulator.calls("create")) == 1


def test_gemini_refuses_an_announced_retirement_with_no_call(ws: Path, emulator: Emulator) -> None:
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="plan", model="gemini-2.5-pro")
    assert run.code == 2 and "use gemini-3.8-flash" in run.log
    assert emulator.calls() == []


def test_mode_batch_on_a_model_that_cannot_batch_is_refused(ws: Path, emulator: Emulator) -> None:
    emulator.config.no_batch_models = {"claude-opus-4-8"}
    run = ANTHROPIC.run(ws, emulator, prompt_files="prompts/*", mode="batch", model="claude-opus-4-8")
    assert run.code == 2 and "claude-opus-4-8 cannot run in a batch" in run.log
    assert {c.route for c in emulator.calls()} == {"models"}


def test_a_routed_batch_on_a_model_that_cannot_batch_runs_synchronously_with_a_notice(
    ws: Path, emulator: Emulator
) -> None:
    emulator.config.no_batch_models = {"claude-opus-4-8"}
    run = ANTHROPIC.run(
        ws,
        emulator,
        prompt_files="prompts/*",
        mode="auto",
        workload="feature-ideation",
        upgrade="false",
        model="claude-opus-4-8",
    )
    assert run.code == 0, run.log
    assert emulator.calls("create") == [] and len(emulator.calls("messages")) == 2
    assert run.outputs["mode"] == "sync"
    assert "cannot run in a batch" in run.log and "model capability" in run.summary


def test_the_emulator_errors_batch_items_for_a_model_that_cannot_batch(emulator: Emulator) -> None:
    import anthropic

    emulator.config.no_batch_models = {"claude-opus-4-8"}
    client = anthropic.Anthropic(api_key="k", base_url=emulator.base_url, max_retries=0)
    try:
        assert client.models.retrieve("claude-opus-4-8").capabilities.batch.supported is False  # type: ignore[union-attr]
        params = {"model": "claude-opus-4-8", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}
        batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": params}])  # type: ignore[typeddict-item]
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            pass
        (line,) = list(client.messages.batches.results(batch.id))
        assert line.result.type == "errored" and "Message Batches" in line.result.error.error.message
    finally:
        client.close()
