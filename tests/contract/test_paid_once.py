"""Never pay twice, never lose a paid answer: provider answers that look fine on the wire but are not
(a results download that ends early, a garbled body, a batch that is not there or not ours to read,
results for requests never sent). Each against the emulator on both providers, real SDKs over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator, Fault
from support import PROVIDERS, ProviderProfile, write_prompts

PROMPTS = {f"prompts/p{i}.md": f"Prompt number {i}." for i in range(5)}
IDS = {f"prompts_p{i}_md" for i in range(5)}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, PROMPTS)
    return root


def results_route(provider: ProviderProfile, emulator: Emulator) -> str:
    """The route a results download takes; Gemini streams results only from a file (the input is made one)."""
    if provider.name == "anthropic":
        return "results"
    emulator.config.gemini_inline_limit_bytes = 64
    return "files_download"


def state_of(ws: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((ws / "batch-results" / "state.json").read_text())
    return data


def batches(provider: ProviderProfile, emulator: Emulator) -> list[str]:
    if provider.name == "anthropic":
        return emulator.anthropic.batch_ids()
    return [job.name for job in emulator.gemini.jobs()]


# -- a results download that ends early without a transport error -----------------------------------


def test_a_download_that_ends_early_once_is_read_again_not_paid_again(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    route = results_route(provider, emulator)
    emulator.config.faults = [Fault(route, kind="truncate", after_lines=2, times=1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert emulator.calls(provider.sync) == []
    assert sorted(r["custom_id"] for r in run.results) == sorted(IDS)
    assert {r["via"] for r in run.results} == {"batch"}
    assert len(emulator.calls(route)) == 2
    assert "download ended early" in run.log


@pytest.mark.parametrize("after_lines", [2, 0], ids=["two-of-five", "empty"])
def test_a_download_that_always_ends_early_leaves_the_rest_pending(
    ws: Path, emulator: Emulator, provider: ProviderProfile, after_lines: int
) -> None:
    route = results_route(provider, emulator)
    emulator.config.faults = [Fault(route, kind="truncate", after_lines=after_lines, times=-1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 1, run.log
    assert emulator.calls(provider.sync) == []  # the batch says all five succeeded: none is paid again
    statuses = sorted(r["status"] for r in run.results)
    assert statuses == sorted(["succeeded"] * after_lines + ["pending"] * (5 - after_lines))
    assert sorted(r["custom_id"] for r in run.results) == sorted(IDS)
    batch_id = run.outputs["batch-id"]
    assert f"collect them with `batch-id: {batch_id}`" in run.log
    assert state_of(ws)["status"] == "pending"
    # Collected later, once the download works: the same batch, nothing submitted or paid again.
    emulator.config.faults = []
    later = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert later.code == 0, later.log
    assert {r["status"] for r in later.results} == {"succeeded"} and len(later.results) == 5
    assert emulator.calls(provider.sync) == [] and batches(provider, emulator) == [batch_id]


# -- a garbled 200 body ----------------------------------------------------------------------------


def test_a_garbled_create_answer_finds_the_batch_instead_of_creating_another(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.faults = [Fault(provider.create, kind="garble", times=1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    (batch_id,) = batches(provider, emulator)
    assert [c.status for c in emulator.calls(provider.create)] == [200]
    assert run.outputs["batch-id"] == batch_id and state_of(ws)["batch_ids"] == [batch_id]
    assert emulator.calls(provider.sync) == []
    assert "the answer could not be read" in run.summary and "it created" in run.summary


def test_a_garbled_status_answer_is_a_failed_poll_that_the_wait_retries(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.faults = [Fault(provider.status, kind="garble", times=2)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert {r["via"] for r in run.results} == {"batch"} and len(run.results) == 5
    assert emulator.calls(provider.sync) == [] and emulator.calls(provider.cancel) == []
    assert "batch status failed: the answer could not be read" in run.log


# -- a batch that is not there, or not ours to read ------------------------------------------------


def test_a_mistyped_batch_id_fails_at_once(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    wrong = f"{provider.batch_id_prefix}doesnotexist"
    started = time.monotonic()
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", batch_id=wrong, timeout_minutes=90)
    assert time.monotonic() - started < 20
    assert run.code == 1, run.log
    assert emulator.calls(provider.sync) == []
    assert "::error" in run.log and "no such batch" in run.log and "check `batch-id`" in run.log
    assert "collect them" not in run.log and "later" not in run.log
    assert run.outputs["status"] == "failed"
    assert {r["status"] for r in run.results} == {"errored"}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_status_check_is_fatal_and_keeps_the_batch_to_collect(
    ws: Path, emulator: Emulator, provider: ProviderProfile, status: int
) -> None:
    emulator.config.faults = [Fault(provider.status, status, times=-1)]
    started = time.monotonic()
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=90)
    assert time.monotonic() - started < 20
    assert run.code == 1, run.log
    assert len(emulator.calls(provider.status)) == 1
    assert emulator.calls(provider.sync) == [] and emulator.calls(provider.cancel) == []
    assert "::error" in run.log and f"HTTP {status}" in run.log
    assert run.outputs["status"] == "failed"
    # The batch was paid for: its answers stay with the provider for a run with a working key.
    assert {r["status"] for r in run.results} == {"pending"} and len(run.results) == 5
    assert state_of(ws)["status"] == "pending"


def test_a_refused_results_download_is_fatal(ws: Path, emulator: Emulator) -> None:
    provider = PROVIDERS["anthropic"]
    emulator.config.faults = [Fault("results", 403, times=-1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=90)
    assert run.code == 1, run.log
    assert len(emulator.calls("results")) == 1
    assert emulator.calls("messages") == []
    assert "::error" in run.log and "HTTP 403" in run.log
    assert {r["status"] for r in run.results} == {"pending"}


# -- results for requests never submitted ----------------------------------------------------------


# Anthropic results come one way (a JSONL download); Gemini's come inline in the job or as a file.
@pytest.mark.parametrize(
    ("name", "inline"),
    [("anthropic", False), ("gemini", True), ("gemini", False)],
    ids=["anthropic", "gemini-inline", "gemini-file"],
)
def test_results_for_requests_never_submitted_are_ignored_with_one_warning(
    ws: Path, emulator: Emulator, name: str, inline: bool
) -> None:
    provider = PROVIDERS[name]
    route = "gemini_get" if inline else results_route(provider, emulator)
    emulator.config.faults = [Fault(route, kind="foreign-results", extra=2, times=-1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert sorted(r["custom_id"] for r in run.results) == sorted(IDS)
    assert run.outputs["succeeded"] == "5" and run.outputs["status"] == "succeeded"
    assert run.log.count("2 results for requests this run did not submit") == 1
