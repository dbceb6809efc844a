"""The provider contract, end to end: every provider passes the same scenarios, each through its real SDK
(anthropic, google-genai) over HTTP against the bundled emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_arbiter.emulator import Emulator, Fault
from support import API_KEY, ProviderProfile, write_prompts

PROMPTS = {
    "prompts/alpha.md": "Propose a feature for the CLI.",
    "prompts/beta.md": "Propose a feature for the docs.",
    "prompts/gamma.json": json.dumps({"custom_id": "gamma", "prompt": "Propose a pricing feature."}),
    "prompts/delta.jsonl": '{"prompt": "Propose an onboarding feature."}\n{"prompt": "Propose a slow feature."}\n',
    "system.md": "You are a product analyst.",
}
IDS = {"prompts_alpha_md", "prompts_beta_md", "gamma", "prompts_delta_jsonl_1", "prompts_delta_jsonl_2"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, PROMPTS)
    return root


# A deadline this short leaves no room for Gemini's Flex tier, so every provider's fallback runs at the
# standard price and the cost assertions below hold for all of them (Flex has its own tests).
NO_FLEX_MINUTES = 10


def test_happy_path_all_via_batch_about_half_price(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    run = p.run(
        ws,
        emulator,
        prompt_files="prompts/*",
        system_prompt_file="system.md",
        mode="batch",
        model=p.model,
        effort=p.effort,
    )
    assert run.code == 0, run.log
    assert len(emulator.calls(p.create)) == 1
    assert emulator.calls(p.sync) == []
    out = run.outputs
    assert (out["mode"], out["status"], out["succeeded"], out["failed"]) == ("batch", "succeeded", "5", "0")
    assert out["batch-id"].startswith(p.batch_id_prefix) and out["model"] == p.model
    assert 49.0 <= float(out["savings-percent"]) <= 50.0
    assert float(out["cost-usd"]) > 0
    assert float(out["cost-usd"]) == pytest.approx(sum(r["cost_usd"] for r in run.results), abs=1e-6)
    assert float(out["sync-cost-usd"]) == pytest.approx(2 * float(out["cost-usd"]), rel=0.02)
    assert set(run.by_id()) == IDS
    for r in run.results:
        assert (r["status"], r["via"], r["tier"]) == ("succeeded", "batch", "batch")
        assert set(r) == {
            "custom_id",
            "source",
            "status",
            "via",
            "model",
            "text",
            "usage",
            "cost_usd",
            "sync_cost_usd",
            "error",
            "tier",
            "stop_reason",
        }
        assert (ws / "batch-results" / f"{r['custom_id']}.md").read_text() == r["text"]
    assert run.by_id()["prompts_delta_jsonl_2"]["source"] == "prompts/delta.jsonl:2"
    # What the batch carried: the system prompt (cached for an hour on Anthropic), the effort asked for.
    params = p.batch_requests(emulator)[0]
    if p.name == "anthropic":
        assert params["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        assert params["output_config"] == {"effort": "max"}
    else:
        assert params["systemInstruction"]["parts"] == [{"text": "You are a product analyst."}]
        assert params["generationConfig"]["thinkingConfig"] == {"thinking_level": "HIGH"}
    assert "Savings" in run.summary and "feature" not in run.summary.lower().replace("feature-ideation", "")


def test_errored_and_expired_rerun_synchronously_and_only_those(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.outcomes = {"prompts_beta_md": "errored", "gamma": "expired"}
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=NO_FLEX_MINUTES)
    assert run.code == 0, run.log
    assert provider.sync_prompts(emulator) == ["Propose a feature for the docs.", "Propose a pricing feature."]
    via = {cid: r["via"] for cid, r in run.by_id().items()}
    assert via == {**dict.fromkeys(IDS, "batch"), "prompts_beta_md": "sync", "gamma": "sync"}
    assert all(r["status"] == "succeeded" for r in run.results)
    assert run.outputs["mode"] == "batch+fallback"
    assert 10 < float(run.outputs["savings-percent"]) < 49
    assert "1 errored, 1 expired" in run.summary


def test_batch_create_failing_every_time_goes_fully_sync(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.faults = [Fault(provider.create, 500, times=-1)]
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=NO_FLEX_MINUTES)
    assert run.code == 0, run.log
    assert len(emulator.calls(provider.create)) == 3  # three attempts, then give up
    assert len(emulator.calls(provider.sync)) == 5
    assert {r["via"] for r in run.results} == {"sync"}
    assert run.outputs["mode"] == "batch+fallback" and run.outputs["batch-id"] == ""
    assert float(run.outputs["savings-usd"]) == 0
    assert "batch create failed" in run.summary


def test_never_ending_batch_is_canceled_and_only_the_unfinished_rerun(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.outcomes = {"prompts_delta_jsonl_2": "hang"}
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.01)
    assert run.code == 0, run.log
    assert len(emulator.calls(provider.cancel)) == 1
    assert provider.sync_prompts(emulator) == ["Propose a slow feature."]
    via = {cid: r["via"] for cid, r in run.by_id().items()}
    assert via == {**dict.fromkeys(IDS, "batch"), "prompts_delta_jsonl_2": "sync"}
    assert run.outputs["status"] == "succeeded"
    assert "canceled batch" in run.summary


def test_leave_then_collect_with_batch_id(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    emulator.config.processing_seconds = 1.0
    first = p.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.002, on_timeout="leave")
    assert first.code == 0, first.log
    assert (first.outputs["mode"], first.outputs["status"]) == ("pending", "pending")
    batch_id = first.outputs["batch-id"]
    assert batch_id.startswith(p.batch_id_prefix)
    assert {r["status"] for r in first.results} == {"pending"}
    assert emulator.calls(p.cancel) == [] and emulator.calls(p.sync) == []
    state = json.loads((ws / "batch-results" / "state.json").read_text())
    assert state["batch_id"] == batch_id and sorted(state["custom_ids"]) == sorted(IDS)
    assert batch_id in first.summary

    second = p.run(ws, emulator, prompt_files="prompts/*", mode="batch", batch_id=batch_id, poll_interval=0.2)
    assert second.code == 0, second.log
    assert len(emulator.calls(p.create)) == 1
    assert (second.outputs["status"], second.outputs["batch-id"]) == ("succeeded", batch_id)
    assert {r["via"] for r in second.results} == {"batch"} and len(second.results) == 5


def test_rerun_with_state_file_collects_instead_of_paying_twice(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.processing_seconds = 1.0
    provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.002, on_timeout="leave")
    again = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", poll_interval=0.2)
    assert again.code == 0, again.log
    assert len(emulator.calls(provider.create)) == 1
    assert again.outputs["status"] == "succeeded"
    assert "collecting it instead of submitting again" in again.log


def test_sync_mode_never_creates_a_batch(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="prompts/alpha.md", workload="daily-pr-review-health")
    assert run.code == 0, run.log
    assert emulator.calls(provider.create) == [] and len(emulator.calls(provider.sync)) == 1
    # Sync mode is chosen for latency: never the slower Flex tier, whatever the deadline.
    assert run.results[0]["tier"] == "standard"
    assert run.outputs["mode"] == "sync" and run.outputs["savings-percent"] == "0.0"
    assert "PR review" in run.summary


def test_requests_that_fail_everywhere_exit_1(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    write_prompts(ws, {"prompts/bad.md": "This one fails. [[emulator:errored]] [[emulator:sync-errored]]"})
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1
    assert run.outputs["status"] == "partial" and run.outputs["failed"] == "1"
    bad = run.by_id()["prompts_bad_md"]
    assert (bad["status"], bad["via"]) == ("errored", "sync") and provider.invalid_request in bad["error"]
    assert "::error title=batch-arbiter%3A incomplete::1 of 6 requests" in run.log
    assert "`prompts_bad_md`" in run.summary


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"prompt_files": "prompts/missing.md"}, "prompt file not found"),
        ({"prompt_files": "prompts/*", "model": "claude-imaginary-9"}, "unknown {provider} model"),
        ({"prompt_files": "prompts/*", "model": "gemini-imaginary-9"}, "unknown {provider} model"),
        ({"prompt_files": "prompts/*", "model": "{foreign_model}"}, "unknown {provider} model"),
        ({"prompt_files": "prompts/*", "effort": "extreme"}, "input `effort`"),
        ({"prompt_files": "prompts/*", "provider": "mistral"}, "input `provider`"),
        ({"prompt_files": "broken.jsonl"}, "broken.jsonl:2: not valid JSON"),
        ({"prompt_files": "prompts/*", "output_dir": "../elsewhere"}, "outside the workspace"),
        ({"prompt_files": "prompts/*", "api_key": ""}, "no API key"),
        ({"prompt_files": "prompts/*", "system_prompt_file": "nope.md"}, "system prompt file not found"),
    ],
)
def test_bad_input_exits_2_before_any_api_call(
    ws: Path, emulator: Emulator, provider: ProviderProfile, inputs: dict[str, object], message: str
) -> None:
    (ws / "broken.jsonl").write_text('{"prompt": "fine"}\n{"prompt": oops}\n')
    names = {"provider": provider.name, "foreign_model": provider.foreign_model}
    inputs = {k: v.format(**names) if isinstance(v, str) else v for k, v in inputs.items()}
    message = message.format(**names)
    run = provider.run(ws, emulator, **inputs)
    assert run.code == 2
    assert message in run.log and "::error" in run.log
    assert emulator.calls() == []
    assert run.outputs == {}


def test_api_key_reaches_no_file_or_log(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    emulator.config.outcomes = {"gamma": "errored"}
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert f"::add-mask::{API_KEY}" in run.log
    assert run.log.count(API_KEY) == 1
    for path in (ws / "batch-results").iterdir():
        assert API_KEY not in path.read_text(), path
    assert API_KEY not in run.summary and API_KEY not in json.dumps(run.outputs)


def test_collecting_again_keeps_what_an_earlier_run_settled(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.outcomes = {"gamma": "errored"}
    first = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", metrics_file="metrics.jsonl")
    assert first.code == 0 and len(emulator.calls(provider.sync)) == 1
    again = provider.run(
        ws,
        emulator,
        prompt_files="prompts/*",
        mode="batch",
        batch_id=first.outputs["batch-id"],
        metrics_file="metrics.jsonl",
    )
    assert again.code == 0, again.log
    assert len(emulator.calls(provider.sync)) == 1  # the errored request is not paid for a second time
    assert sorted(r["custom_id"] for r in again.results) == sorted(IDS)
    assert {r["custom_id"]: r["via"] for r in again.results}["gamma"] == "sync"
    assert again.outputs["cost-usd"] == first.outputs["cost-usd"]
    assert "kept 5 results an earlier run of these batches settled" in again.summary
    # The spend log counts the money once: the second run added nothing.
    records = [json.loads(x) for x in (ws / "metrics.jsonl").read_text().splitlines()]
    assert [r["cost_usd"] > 0 for r in records] == [True, False]


@pytest.mark.parametrize("change", ["prompts", "model"])
def test_a_state_file_of_another_run_is_refused_before_anything_is_paid(
    ws: Path, emulator: Emulator, provider: ProviderProfile, change: str
) -> None:
    emulator.config.processing_seconds = 5.0
    first = provider.run(
        ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.002, on_timeout="leave"
    )
    assert first.outputs["status"] == "pending", first.log
    batch_id = first.outputs["batch-id"]
    if change == "prompts":
        write_prompts(ws, {f"new/n{i}.md": f"A different prompt {i}." for i in range(3)})
        inputs = {"prompt_files": "new/*"}
    else:
        inputs = {"prompt_files": "prompts/*", "model": provider.cheaper_model}
    again = provider.run(ws, emulator, mode="batch", **inputs)
    assert again.code == 2, again.log
    assert f"belongs to batch {batch_id}" in again.log and f"batch-id: {batch_id}" in again.log
    assert "Nothing was submitted" in again.log
    assert len(emulator.calls(provider.create)) == 1 and emulator.calls(provider.sync) == []
    # The pending batch's state is untouched, so it can still be collected.
    state = json.loads((ws / "batch-results" / "state.json").read_text())
    assert state["batch_id"] == batch_id and state["status"] == "pending"


def test_a_torn_last_line_of_earlier_results_is_skipped_and_nothing_settled_is_paid_again(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.outcomes = {"gamma": "errored"}
    first = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert first.code == 0 and len(emulator.calls(provider.sync)) == 1
    results = ws / "batch-results" / "results.jsonl"
    with results.open("a", encoding="utf-8") as fh:
        fh.write('{"custom_id": "prompts_alpha_md", "status": "succ')  # a kill mid-write
    again = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", batch_id=first.outputs["batch-id"])
    assert again.code == 0, again.log
    assert "skipped 1 unreadable lines" in again.log
    assert len(emulator.calls(provider.sync)) == 1
    assert sorted(r["custom_id"] for r in again.results) == sorted(IDS)


def test_a_run_stopped_mid_carry_loses_no_settled_result(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.outcomes = {"gamma": "errored"}
    first = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    out = ws / "batch-results"
    # What a run stopped right after setting the results aside leaves: the earlier file, a new empty one.
    (out / "results.jsonl").rename(out / "results.earlier.jsonl")
    (out / "results.jsonl").write_text("")
    for _ in range(2):  # and a second run, which must not overwrite the set-aside file with the empty one
        again = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", batch_id=first.outputs["batch-id"])
        assert again.code == 0, again.log
    assert len(emulator.calls(provider.sync)) == 1  # gamma's sync answer was carried, not paid again
    assert {r["custom_id"]: r["via"] for r in again.results}["gamma"] == "sync"
    assert not (out / "results.earlier.jsonl").exists()


@pytest.mark.parametrize(
    "state",
    [
        {
            "provider": "anthropic",
            "model": "m",
            "workload": "w",
            "deadline": "",
            "status": "submitted",
            "batch_ids": "abc",
        },
        {"provider": 7, "batch_ids": ["b"], "status": "submitted"},
        "not an object",
    ],
)
def test_a_corrupt_state_file_stops_the_run_before_anything_is_paid(
    ws: Path, emulator: Emulator, provider: ProviderProfile, state: object
) -> None:
    out = ws / "batch-results"
    out.mkdir()
    (out / "state.json").write_text(json.dumps(state))
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 2, run.log
    assert "cannot be read as a batch-arbiter state file" in run.log
    assert emulator.calls(provider.create) == [] and emulator.calls(provider.status) == []


def test_an_output_dir_that_cannot_be_written_is_refused_before_anything_is_sent(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    (ws / "blocker").write_text("a file where the output directory's parent should be")
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch", output_dir="blocker/out")
    assert run.code == 2, run.log
    assert "input `output-dir`: blocker/out cannot be written" in run.log
    assert emulator.calls(provider.create) == [] and emulator.calls(provider.sync) == []


def test_a_state_file_that_cannot_be_written_stops_the_run_before_any_batch_is_created(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    state = ws / "batch-results" / "state.json"
    state.mkdir(parents=True)  # the directory is writable, but state.json itself cannot be replaced
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1, run.log
    assert "state.json could not be written" in run.log and "nothing was submitted" in run.log
    # Saved before the create is sent, so a batch never exists that no file names.
    assert emulator.calls(provider.create) == [] and emulator.calls(provider.sync) == []


def test_sync_mode_with_a_rejected_key_stops_at_the_first_refusal(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    emulator.config.api_key = "the-only-key-the-api-takes"
    run = provider.run(ws, emulator, prompt_files="prompts/*", mode="sync", max_concurrency=1)
    assert run.code == 1, run.log
    assert len(emulator.calls(provider.sync)) == 1  # not one refused call per request
    assert "stopped the synchronous calls" in run.log
    assert {r["status"] for r in run.results} == {"errored"} and len(run.results) == len(IDS)
