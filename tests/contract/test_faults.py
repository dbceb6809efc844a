"""Faults a scheduled job meets, and attacks on it: each one against the emulator, real SDK over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batch_arbiter.core.policy import Decision
from batch_arbiter.emulator import Emulator, Fault
from batch_arbiter.run.engine import RunResult
from batch_arbiter.run.report import RunContext, summary
from batch_arbiter.run.results import Totals
from support import API_KEY, parse_outputs, run_action, runner_env, start_entrypoint, write_prompts

PROMPTS = {f"prompts/p{i}.md": f"Prompt number {i}." for i in range(5)}
IDS = {f"prompts_p{i}_md" for i in range(5)}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, PROMPTS)
    return root


def test_retry_after_never_sleeps_past_the_deadline(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("create", 429, times=1, retry_after=3600)]
    started = time.monotonic()
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.05)
    assert time.monotonic() - started < 30
    assert run.code == 0, run.log
    assert [c.status for c in emulator.calls("create")] == [429, 200]
    assert len(emulator.anthropic.batch_ids()) == 1


def test_429_and_5xx_on_poll_results_and_sync_are_retried(ws: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {"prompts_p0_md": "errored"}
    emulator.config.faults = [
        Fault("retrieve", 529, times=4, retry_after=0.01),
        Fault("results", 503, times=1, retry_after=0.01),
        Fault("messages", 429, times=1, retry_after=0.01),
    ]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert run.outputs["status"] == "succeeded"
    assert [c.status for c in emulator.calls("messages")] == [429, 200]
    assert {r["custom_id"]: r["via"] for r in run.results}["prompts_p0_md"] == "sync"
    assert "overloaded" in run.log  # a status check that failed is reported, and the wait goes on


def test_connection_drops_while_polling_do_not_end_the_wait(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("retrieve", kind="drop", times=5)]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert {r["via"] for r in run.results} == {"batch"} and len(run.results) == 5
    assert "connection error" in run.log


def test_results_download_cut_half_way_loses_and_duplicates_nothing(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("results", kind="cut", after_lines=2, times=1)]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert len(emulator.calls("results")) == 2
    ids = [r["custom_id"] for r in run.results]
    assert sorted(ids) == sorted(IDS)  # each once
    assert {r["via"] for r in run.results} == {"batch"}
    assert emulator.calls("messages") == []


def test_lost_create_response_finds_the_batch_instead_of_paying_twice(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("create", kind="lose-response", times=1)]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    (batch_id,) = emulator.anthropic.batch_ids()
    assert len(emulator.calls("create")) == 1
    assert run.outputs["batch-id"] == batch_id
    assert "found the batch it created" in run.summary


def test_lost_create_response_with_a_second_create_cancels_the_duplicate(ws: Path, emulator: Emulator) -> None:
    # The batch list is down when the lost create is checked, so a second batch gets created.
    emulator.config.processing_seconds = 2.0
    emulator.config.faults = [
        Fault("create", kind="lose-response", times=1),
        Fault("list", 500, times=3, retry_after=0.01),
    ]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", poll_interval=0.5)
    assert run.code == 0, run.log
    first, second = sorted(emulator.anthropic.batch_ids(), key=lambda b: emulator.batch(b).seq)
    assert run.outputs["batch-id"] == second
    assert [c.path for c in emulator.calls("cancel")] == [f"/v1/messages/batches/{first}/cancel"]
    assert f"canceled duplicate batch {first}" in run.summary
    assert len(run.results) == 5


def test_mixed_results_rerun_only_the_unfinished_and_a_missing_paid_one_waits(ws: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {
        "prompts_p0_md": "errored",
        "prompts_p1_md": "expired",
        "prompts_p2_md": "canceled",
        # Counted as succeeded by the batch, but its line is not in the results: paid, so never rerun.
        "prompts_p3_md": "missing",
    }
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1, run.log
    got = {r["custom_id"]: (r["via"], r["status"]) for r in run.results}
    assert got == {
        "prompts_p0_md": ("sync", "succeeded"),
        "prompts_p1_md": ("sync", "succeeded"),
        "prompts_p2_md": ("sync", "succeeded"),
        "prompts_p3_md": ("batch", "pending"),
        "prompts_p4_md": ("batch", "succeeded"),
    }
    assert len(emulator.calls("messages")) == 3
    assert "1 errored, 1 expired, 1 canceled; rerunning them synchronously" in run.summary


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancellation_leaves_state_and_post_step_cancels_the_batch(
    tmp_path: Path, emulator: Emulator, sig: signal.Signals
) -> None:
    emulator.config.default_outcome = "hang"
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, PROMPTS)
    env = runner_env(ws, files, emulator, prompt_files="prompts/*", mode="batch")
    proc = start_entrypoint(ws, env)
    state_path = ws / "batch-results" / "state.json"
    deadline = time.monotonic() + 30
    # state.json is written before the create is sent; the batch exists once its id is in it.
    while time.monotonic() < deadline and not (state_path.exists() and '"batch_ids": [\n' in state_path.read_text()):
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 1, out
    state = json.loads(state_path.read_text())
    assert state["status"] == "submitted" and sorted(state["custom_ids"]) == sorted(IDS)
    assert emulator.calls("cancel") == []
    assert f"batch-id: {state['batch_id']}" in out
    assert parse_outputs((files / "set_output").read_text())["status"] == "pending"
    lines = [json.loads(x) for x in (ws / "batch-results" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["custom_id"] for r in lines) == sorted(IDS) and {r["status"] for r in lines} == {"pending"}

    post = subprocess.run(
        [sys.executable, "-m", "batch_arbiter", "post"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert post.returncode == 0, post.stdout + post.stderr
    assert [c.path for c in emulator.calls("cancel")] == [f"/v1/messages/batches/{state['batch_id']}/cancel"]
    assert json.loads(state_path.read_text())["status"] == "canceled"
    assert f"batch-id: {state['batch_id']}" in post.stdout
    # Run again: nothing left to cancel.
    again = subprocess.run(
        [sys.executable, "-m", "batch_arbiter", "post"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and len(emulator.calls("cancel")) == 1


# -- security -------------------------------------------------------------------------------------


def test_secret_echoed_by_the_model_is_redacted_from_every_file(ws: Path, emulator: Emulator) -> None:
    write_prompts(ws, {"prompts/leak.md": f"Repeat after me: {API_KEY}"})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    leak = next(r for r in run.results if r["custom_id"] == "prompts_leak_md")
    assert API_KEY not in leak["text"] and "***" in leak["text"]
    for path in (ws / "batch-results").iterdir():
        assert API_KEY not in path.read_text(), path
    assert run.log.count(API_KEY) == 1  # the ::add-mask:: line itself


def test_model_output_cannot_run_workflow_commands_or_forge_outputs(ws: Path, emulator: Emulator) -> None:
    attack = "::error::pwned\n::add-mask::x\nEOF\nstatus=hacked\nghadelimiter_1\ncost-usd=0"
    write_prompts(ws, {"prompts/evil.md": attack})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert "pwned" not in run.log and "hacked" not in run.log
    assert run.outputs["status"] == "succeeded" and float(run.outputs["cost-usd"]) > 0
    assert set(run.outputs) >= {"status", "cost-usd"} and "hacked" not in json.dumps(run.outputs)
    evil = next(r for r in run.results if r["custom_id"] == "prompts_evil_md")
    assert "::error::pwned" in evil["text"]  # kept as data, in the results only


def test_summary_renders_remote_text_inert() -> None:
    ctx = RunContext(
        "<b>w</b>",
        "anthropic",
        "m",
        None,
        Decision("batch", False, "default", "r"),
        Path("/nonexistent"),
        Path("/nonexistent/results.jsonl"),
    )
    evil = "![img](http://evil/x.png) [click](http://evil) <script>alert(1)</script> | x"
    text = summary(ctx, RunResult("batch", "succeeded", ["msgbatch_1"], Totals(), [evil]))
    assert "- `![img](http://evil/x.png) [click](http://evil) <script>alert(1)</script> \\| x`" in text
    assert "\\<b\\>w\\</b\\>" in text
    assert "<script>" not in text.replace("`![img]", "").split("`")[0]


def test_rejected_key_stops_the_run_and_never_reaches_a_file(ws: Path, emulator: Emulator) -> None:
    emulator.config.api_key = "sk-ant-the-right-key"
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1
    assert emulator.calls("messages") == []  # no sync fallback that would fail the same way
    assert {r["status"] for r in run.results} == {"errored"}
    assert "authentication_error" in run.results[0]["error"]
    assert run.log.count(API_KEY) == 1 and API_KEY not in run.summary
    for path in (ws / "batch-results").iterdir():
        assert API_KEY not in path.read_text(), path


def test_results_that_cannot_be_downloaded_are_left_to_collect_not_paid_twice(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("results", 500, times=-1, retry_after=0.01)]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1
    assert emulator.calls("messages") == []
    assert {r["status"] for r in run.results} == {"pending"}
    batch_id = run.outputs["batch-id"]
    assert f"collect them with `batch-id: {batch_id}`" in run.log
    assert json.loads((ws / "batch-results" / "state.json").read_text())["status"] == "pending"
    emulator.config.faults = []
    later = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")  # the state file points at it
    assert later.code == 0 and later.outputs["batch-id"] == batch_id
    assert {r["via"] for r in later.results} == {"batch"} and len(emulator.anthropic.batch_ids()) == 1


def test_planted_symlinks_in_the_output_dir_are_not_followed(ws: Path, emulator: Emulator, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("untouched")
    out = ws / "batch-results"
    out.mkdir()
    for name in ("prompts_p0_md.md", "results.jsonl", "state.tmp"):
        (out / name).symlink_to(target)
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert target.read_text() == "untouched"
    assert not (out / "prompts_p0_md.md").is_symlink() and (out / "prompts_p0_md.md").read_text()
    assert len(run.results) == 5


def test_an_unexpected_error_ends_with_an_annotation_not_a_traceback(ws: Path, emulator: Emulator) -> None:
    # A directory where an answer file goes: the writer fails mid-run, after the batch was collected.
    (ws / "batch-results" / "prompts_p0_md.md").mkdir(parents=True)
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1
    assert "::error title=batch-arbiter%3A internal error::unexpected IsADirectoryError" in run.log
    assert "::group::Traceback" in run.log and API_KEY not in run.log.replace(f"::add-mask::{API_KEY}", "")
    assert len(emulator.calls("create")) == 1


def test_an_output_dir_that_is_a_file_is_bad_input(ws: Path, emulator: Emulator) -> None:
    (ws / "batch-results").write_text("a file where the output directory should be")
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 2, run.log
    assert "input `output-dir`: batch-results cannot be written" in run.log
    assert emulator.calls("create") == []


def run_post_step(tmp_path: Path, emulator: Emulator, state: dict[str, object], **inputs: str) -> str:
    """The post step as the runner runs it, after a main step that left `state` in state.json."""
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    (ws / "batch-results").mkdir(parents=True)
    files.mkdir()
    saved = {
        "provider": "anthropic",
        "model": "claude-sonnet-5-5",
        "workload": "w",
        "deadline": "",
        "status": "submitted",
        "batch_ids": ["msgbatch_01x"],
        "custom_ids": ["a"],
        **state,
    }
    (ws / "batch-results" / "state.json").write_text(json.dumps({k: v for k, v in saved.items() if v is not None}))
    env = runner_env(ws, files, emulator, prompt_files="x.md", **inputs)  # GITHUB_RUN_ID 4242
    post = subprocess.run(
        [sys.executable, "-m", "batch_arbiter", "post"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert post.returncode == 0 and "Traceback" not in post.stderr, post.stdout + post.stderr
    return post.stdout


def test_post_step_leaves_the_batch_when_asked(tmp_path: Path, emulator: Emulator) -> None:
    out = run_post_step(tmp_path, emulator, {}, on_timeout="leave")
    assert "::notice::batch msgbatch_01x is still with the provider" in out
    assert emulator.calls() == []


def test_post_step_without_a_key_warns_instead_of_failing(tmp_path: Path, emulator: Emulator) -> None:
    out = run_post_step(tmp_path, emulator, {}, api_key="")
    assert "::warning::batch msgbatch_01x may still be running, and no API key is available" in out
    assert emulator.calls() == []


def test_post_step_leaves_an_earlier_runs_batch_alone(tmp_path: Path, emulator: Emulator) -> None:
    # state.json restored from yesterday's run (to collect), and today's main step stopped before using it.
    run_post_step(tmp_path, emulator, {"run": "1111.1"})
    assert emulator.calls("cancel") == []


def test_post_step_reads_a_state_file_of_the_single_batch_layout(tmp_path: Path, emulator: Emulator) -> None:
    # state.json written before runs could span several batches names one `batch_id`.
    run_post_step(tmp_path, emulator, {"batch_id": "msgbatch_01old", "batch_ids": None})
    assert [c.path for c in emulator.calls("cancel")] == ["/v1/messages/batches/msgbatch_01old/cancel"]


def test_a_run_stopped_mid_fallback_still_logs_what_it_spent(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.sync_rate_limit = 1  # one call a second: the run is still going when it is stopped
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, PROMPTS)
    env = runner_env(
        ws, files, emulator, prompt_files="prompts/*", mode="sync", max_concurrency="1", metrics_file="metrics.jsonl"
    )
    proc = start_entrypoint(ws, env)
    deadline = time.monotonic() + 30
    # Two answers in: the first is surely written by the time the second has arrived.
    while sum(c.status == 200 for c in emulator.calls("messages")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1, out
    (record,) = [json.loads(x) for x in (ws / "metrics.jsonl").read_text().splitlines()]
    lines = [json.loads(x) for x in (ws / "batch-results" / "results.jsonl").read_text().splitlines()]
    answered = [r for r in lines if r["status"] == "succeeded"]
    assert answered and record["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in answered))
    assert {r["status"] for r in lines} <= {"succeeded", "canceled"} and len(lines) == 5


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_answers_paid_during_a_fallback_survive_a_cancel_or_kill_and_are_never_paid_again(
    tmp_path: Path, emulator: Emulator, sig: signal.Signals
) -> None:
    ten = {f"prompts/q{i}.md": f"Question {i}." for i in range(10)}
    emulator.config.default_outcome = "errored"  # the batch gives nothing: all ten fall back
    emulator.config.sync_latency_seconds = 0.4
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, ten)
    env = runner_env(ws, files, emulator, prompt_files="prompts/*", mode="batch", max_concurrency="2")
    proc = start_entrypoint(ws, env)
    deadline = time.monotonic() + 30
    while sum(c.status == 200 for c in emulator.calls("messages")) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    proc.send_signal(sig)
    proc.communicate(timeout=20)
    assert time.monotonic() - started < 8  # within the runner's grace, not after every call in flight
    time.sleep(0.5)  # a call the emulator is still answering is recorded once it has answered
    paid_first = sum(c.status == 200 for c in emulator.calls("messages"))
    lines = [json.loads(x) for x in (ws / "batch-results" / "results.jsonl").read_text().splitlines() if x]
    kept = {r["custom_id"] for r in lines if r["status"] == "succeeded"}
    # Every answer the emulator delivered before the process stopped is on disk (at most the calls
    # in flight at a SIGKILL are lost: two, the concurrency).
    in_flight = 2 if sig == signal.SIGKILL else 0
    assert len(kept) >= paid_first - in_flight and len(kept) >= 4 - in_flight

    # The re-run collects the same batch: the kept answers are carried, only the rest is paid.
    again = runner_env(ws, files, emulator, prompt_files="prompts/*", mode="batch", max_concurrency="2")
    rerun = subprocess.run(
        [sys.executable, "-m", "batch_arbiter"], cwd=ws, env=again, capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(emulator.calls("create")) == 1
    final = [json.loads(x) for x in (ws / "batch-results" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["custom_id"] for r in final) == sorted(f"prompts_q{i}_md" for i in range(10))
    assert {r["status"] for r in final} == {"succeeded"}
    paid = sum(c.status == 200 for c in emulator.calls("messages"))
    assert paid == 10 + (paid_first - len(kept))  # each request paid once, beyond answers a kill lost


def test_a_signal_during_the_budget_estimate_ends_cleanly_with_nothing_sent(tmp_path: Path, emulator: Emulator) -> None:
    # Token counting keeps being told to wait: the run is inside the estimate when the signal comes.
    emulator.config.faults = [Fault("count_tokens", 429, times=-1, retry_after=5)]
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, PROMPTS)
    env = runner_env(ws, files, emulator, prompt_files="prompts/*", mode="batch", budget_usd="10")
    proc = start_entrypoint(ws, env)
    deadline = time.monotonic() + 30
    while not emulator.calls("count_tokens") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.calls("count_tokens"), "the run never reached the estimate"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1, out
    assert "cancelled by SIGTERM while checking the inputs; nothing was sent" in out
    assert "Traceback" not in out
    assert emulator.calls("create") == [] and emulator.calls("messages") == []


def test_post_step_of_a_killed_collect_leaves_the_batch_until_collect_by(tmp_path: Path, emulator: Emulator) -> None:
    later = (datetime.now(UTC) + timedelta(hours=5)).isoformat(timespec="seconds")
    out = run_post_step(tmp_path, emulator, {"run": "4242.1", "collect_by": later}, mode="collect")
    assert "::notice::batch msgbatch_01x is still with the provider" in out
    assert emulator.calls() == []


def test_post_step_of_a_killed_collect_after_collect_by_cancels(tmp_path: Path, emulator: Emulator) -> None:
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    run_post_step(tmp_path, emulator, {"run": "4242.1", "collect_by": earlier}, mode="collect")
    assert [c.route for c in emulator.calls()] == ["cancel"]
