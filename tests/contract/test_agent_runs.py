"""Agent runs end to end, for both providers: the action with `tools` as the runner starts it, conversations
through batch rounds against the emulator, outputs, summary and result files as a workflow sees them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.emulator import Emulator
from support import ProviderProfile, runner_env, start_entrypoint, write_prompts

DEEP = 'Study the repository. [[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"}]]'
FILES = {
    "notes.md": "Signals: users ask for faster nightly runs.\n",
    "src/app.py": "def main():\n    pass  # TODO: batch the nightly job\n",
    "prompts/deep.md": DEEP,
    "prompts/quick.md": "Say hello.",
    "system.md": "You are a product analyst.",
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, FILES)
    return root


def transcript(ws: Path, cid: str) -> list[dict[str, Any]]:
    lines = (ws / "batch-results" / f"{cid}.transcript.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_three_turn_conversation_beside_a_one_turn_one(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    run = provider.run(
        ws, emulator, prompt_files="prompts/*.md", system_prompt_file="system.md", mode="batch", tools="read, grep"
    )
    assert run.code == 0, run.log
    assert (run.outputs["mode"], run.outputs["status"], run.outputs["succeeded"]) == ("batch", "succeeded", "2")
    lines = run.by_id()
    deep, quick = lines["prompts_deep_md"], lines["prompts_quick_md"]
    assert (deep["turns"], deep["tool_calls"], deep["via"], deep["stop_reason"]) == (
        3,
        {"grep": 1, "read": 1},
        "batch",
        "end_turn",
    )
    assert (quick["turns"], quick["tool_calls"]) == (1, {})
    assert (ws / "batch-results" / "prompts_deep_md.md").read_text() == deep["text"]
    # Three rounds, three batches: both conversations in the first, only the deep one after.
    assert len(emulator.calls(provider.create)) == 3 and emulator.calls(provider.sync) == []
    assert [len(b) for b in batch_sizes(provider, emulator)] == [2, 1, 1]
    assert run.outputs["batch-id"].count(",") == 2
    # The summary's table of rounds.
    assert "### Rounds" in run.summary
    rows = [line for line in run.summary.splitlines() if line.startswith("| 1 |") or line.startswith("| 3 |")]
    assert rows[0].startswith("| 1 | 2 | batch |") and rows[0].endswith("| 1 |")
    assert rows[1].startswith("| 3 | 1 | batch |") and rows[1].endswith("| 0 |")
    # The tool results the model got, in the transcript: the file's text and the grep hit.
    results = [r for t in transcript(ws, "prompts_deep_md") if t["type"] == "tool_results" for r in t["results"]]
    assert results[0]["content"].startswith("Signals:") and "src/app.py:2:" in results[1]["content"]
    # Cost and tokens sum over the turns, and the outputs over the conversations.
    assert float(run.outputs["cost-usd"]) == pytest.approx(deep["cost_usd"] + quick["cost_usd"], abs=1e-6)
    # Less than half off: the 1-hour cache writes a round needs cost twice the input rate (5-minute: 1.25x).
    assert 0 < float(run.outputs["savings-percent"]) <= 50


def test_sync_mode_runs_every_turn_synchronously(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="prompts/*.md", mode="sync", tools="read,grep")
    assert run.code == 0, run.log
    assert run.outputs["mode"] == "sync" and emulator.calls(provider.create) == []
    assert len(emulator.calls(provider.sync)) == 4
    assert {r["via"] for r in run.results} == {"sync"}


def test_the_model_cannot_read_outside_the_workspace(
    ws: Path, emulator: Emulator, provider: ProviderProfile, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("OUTSIDE-SECRET\n")
    (ws / "out.txt").symlink_to(tmp_path / "secret.txt")
    calls = " && ".join(f'read {{"path": "{p}"}}' for p in ("../../etc/passwd", "/etc/hostname", "out.txt"))
    write_prompts(ws, {"prompts/deep.md": f"Read. [[emulator:agent {calls}]]"})
    run = provider.run(ws, emulator, prompt_files="prompts/deep.md", mode="batch", tools="read")
    assert run.code == 0, run.log
    (line,) = run.results
    assert "after 3 tool results (3 errors)" in line["text"]
    files = "".join(p.read_text() for p in (ws / "batch-results").rglob("*") if p.is_file())
    assert "OUTSIDE-SECRET" not in files and "root:x:" not in files


def test_max_turns_cuts_a_conversation_off(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="prompts/*.md", mode="batch", tools="read,grep", max_turns="2")
    lines = run.by_id()
    deep = lines["prompts_deep_md"]
    assert (deep["status"], deep["stop_reason"], deep["turns"]) == ("incomplete", "max_turns", 2)
    assert deep["text"] and lines["prompts_quick_md"]["status"] == "succeeded"
    assert run.outputs["status"] == "partial"
    # Cut off, not failed: every conversation has an answer, so the step passes.
    assert run.code == 0, run.log


def test_server_tools_and_a_paused_turn(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    script = (
        '[[emulator:agent web-search {"query": "batch api agents"} && pause || web-fetch {"url": "https://x.test"}]]'
    )
    write_prompts(ws, {"prompts/deep.md": f"Research. {script}"})
    run = provider.run(ws, emulator, prompt_files="prompts/deep.md", mode="batch", tools="web-search\nweb-fetch")
    assert run.code == 0, run.log
    (line,) = run.results
    # The search fee from data/tool-fees.tsv, in full (no provider discounts it in a batch), on top of the
    # tokens: $10 per 1,000 searches (Anthropic), $14 per 1,000 search queries (Gemini 3 and later).
    fee = 0.01 if provider.name == "anthropic" else 0.014
    tokens, sync_tokens = line["cost_usd"] - fee, line["sync_cost_usd"] - fee
    assert 0 < tokens < 0.01 and sync_tokens > tokens
    if provider.name == "anthropic":
        # The pause is continued in a second round; both server tools counted.
        assert (line["turns"], line["server_tool_use"]) == (2, {"web-fetch": 1, "web-search": 1})
        assert len(emulator.calls(provider.create)) == 2
        last = batch_sizes(provider, emulator)[-1][0]
        assert last["messages"][-1]["role"] == "assistant"
    else:
        assert (line["turns"], line["server_tool_use"]) == (1, {"web-search": 1})


def test_killed_between_rounds_then_run_again_resubmits_nothing_answered(
    ws: Path, emulator: Emulator, provider: ProviderProfile, tmp_path: Path
) -> None:
    slow = 'Go. [[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"} && slow]]'
    write_prompts(ws, {"prompts/deep.md": slow})
    emulator.config.processing_seconds = 0.2
    files = tmp_path / "files"
    files.mkdir()
    inputs = {"prompt-files": "prompts/*.md", "mode": "batch", "tools": "read,grep", "provider": provider.name}
    env = runner_env(ws, files, emulator, **inputs)
    proc = start_entrypoint(ws, env)
    conversations = ws / "batch-results" / "conversations.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if conversations.exists() and '"round": 2' in conversations.read_text():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    first_creates = len(emulator.calls(provider.create))
    assert first_creates in (1, 2)
    again = start_entrypoint(ws, env)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert "continuing 1 conversations from round 2" in out
    lines = {
        r["custom_id"]: r for r in map(json.loads, (ws / "batch-results" / "results.jsonl").read_text().splitlines())
    }
    assert lines["prompts_deep_md"]["turns"] == 3 and lines["prompts_quick_md"]["turns"] == 1
    # Round 1 went once; round 2 was collected (or created once, if the kill came before its create).
    sizes = [len(b) for b in batch_sizes(provider, emulator)]
    assert sizes == [2, 1, 1]


def batch_sizes(provider: ProviderProfile, emulator: Emulator) -> list[list[dict[str, Any]]]:
    """Each batch created, as its list of request params (Anthropic) or requests (Gemini)."""
    found = []
    for call in emulator.calls(provider.create):
        if call.status != 200:
            continue
        if provider.name == "anthropic":
            found.append([r["params"] for r in call.body["requests"]])
        else:
            found.append([r["request"] for r in call.body["batch"]["inputConfig"]["requests"]["requests"]])
    return found


def test_a_turn_cut_at_the_output_limit_or_refused_ends_its_conversation(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    write_prompts(
        ws,
        {
            "prompts/deep.md": f"{DEEP} [[emulator:max-tokens]]",
            "prompts/quick.md": "Say something. [[emulator:refusal]]",
        },
    )
    run = provider.run(ws, emulator, prompt_files="prompts/*.md", mode="batch", tools="read,grep")
    lines = run.by_id()
    cut, refused = lines["prompts_deep_md"], lines["prompts_quick_md"]
    # Cut short: its text kept, incomplete, paid; not carried on into tool rounds.
    assert (cut["status"], cut["stop_reason"], cut["turns"]) == ("incomplete", "max_tokens", 1)
    assert cut["cost_usd"] > 0
    # Refused: errored with the reason, never rerun in a batch or synchronously.
    assert refused["status"] == "errored" and ("refus" in refused["error"] or "blocked" in refused["error"])
    assert emulator.calls(provider.sync) == [] and len(emulator.calls(provider.create)) == 1
    assert run.code == 1


def test_every_rounds_wait_counts_in_the_runner_cost(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    # A dear runner: three rounds of waiting cost more than the batches saved on these small prompts.
    run = provider.run(
        ws,
        emulator,
        prompt_files="prompts/*.md",
        mode="batch",
        tools="read, grep",
        runner_cost_per_minute=50,
        metrics_file="m.jsonl",
    )
    assert run.code == 0, run.log
    out = run.outputs
    savings, net = float(out["savings-usd"]), float(out["net-savings-usd"])
    assert float(out["runner-cost-usd"]) == pytest.approx(50 * int(out["runner-minutes"]))
    record = json.loads((ws / "m.jsonl").read_text())
    # Waiting is summed over the rounds: three rounds of at least the emulator's processing time each.
    assert record["waiting_cost_usd"] >= 50 * 3 * emulator.config.processing_seconds / 60
    assert net == pytest.approx(savings - record["waiting_cost_usd"], abs=1e-6)
    assert savings > 0 > net
    warnings = [line for line in run.log.splitlines() if "waiting cost more than batching saved::" in line]
    assert len(warnings) == 1
