"""The token-metrics log: the record of a run, safe concurrent appends, and reading logs back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from batch_arbiter.core.metrics import append, effective_tokens, read
from batch_arbiter.core.policy import Decision
from batch_arbiter.core.records import RunMode, Usage
from batch_arbiter.emulator import Emulator
from batch_arbiter.providers.registry import price_table
from batch_arbiter.run.engine import RunResult
from batch_arbiter.run.report import RunContext
from batch_arbiter.run.results import Totals
from batch_arbiter.run.spend_log import run_record
from support import run_action, write_prompts

ORIGIN_FIELDS = [
    "ts",
    "workflow",
    "tier",
    "engine",
    "model",
    "input_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "output_tokens",
    "et",
    "run_id",
    "context",
]
EXTENSION = ["workload", "provider", "mode", "requests", "cost_usd", "sync_cost_usd", "savings_usd"]


def _result(mode: RunMode = "batch") -> tuple[RunContext, RunResult]:
    totals = Totals()
    totals.statuses.update({"succeeded": 3})
    totals.via.update({"batch": 3})
    totals.usage = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=5000, cache_creation_tokens=300)
    totals.cost_usd, totals.sync_cost_usd = 0.5, 1.0
    decision = Decision("batch", False, "default", "scheduled")
    ctx = RunContext("nightly-ideas", "anthropic", "claude-sonnet-4-6", None, decision, Path("out"), Path("out/r"))
    return ctx, RunResult(mode, "succeeded", ["msgbatch_1"], totals)


def test_record_has_the_origin_layout_then_the_extension() -> None:
    ctx, result = _result()
    env = {"GITHUB_RUN_ID": "4242", "GITHUB_REPOSITORY": "acme/app", "GITHUB_SERVER_URL": "https://ghe.example"}
    now = datetime(2026, 11, 20, 7, 8, 9, tzinfo=UTC)
    record = run_record(ctx, result, prices=price_table(), now=now, workflow="Nightly Ideas", env=env)
    assert list(record)[: len(ORIGIN_FIELDS)] == ORIGIN_FIELDS
    assert set(EXTENSION) <= set(record)
    assert record["ts"] == "2026-11-20T07:08:09Z"
    assert (record["workflow"], record["workload"], record["tier"], record["engine"]) == (
        "Nightly Ideas",
        "nightly-ideas",
        "batch",
        "claude",
    )
    assert record["context"] == "https://ghe.example/acme/app/actions/runs/4242"
    assert record["run_id"] == "4242"
    assert (record["requests"], record["cost_usd"], record["sync_cost_usd"], record["savings_usd"]) == (
        3,
        0.5,
        1.0,
        0.5,
    )
    # Sonnet 4.6 input is $3/MTok, Haiku 4.5 $1/MTok: m = 3.
    assert record["et"] == pytest.approx(3 * (1000 + 0.1 * 5000 + 4.0 * 200))


def test_effective_tokens_falls_back_to_multiplier_one_for_unknown_models() -> None:
    usage = Usage(input_tokens=100, output_tokens=10, cache_read_tokens=1000)
    assert effective_tokens("mystery-model", usage, price_table(), date(2026, 11, 1)) == 240.0
    assert effective_tokens("claude-haiku-4-5", usage, price_table(), date(2026, 11, 1)) == 240.0


_WRITER = """
import sys
from pathlib import Path
from batch_arbiter.core.metrics import append
path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    # Longer than PIPE_BUF (4 KiB), so a line is not whole by luck of a single small write.
    append(path, {"ts": "2026-11-01T00:00:00Z", "workflow": who, "run_id": f"{who}-{i}", "context": "x" * 9000})
"""


def test_concurrent_appends_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "token-usage.jsonl"
    writers, lines_each = 6, 150
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}", str(lines_each)]) for k in range(writers)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * writers
    lines = path.read_text().splitlines()
    assert len(lines) == writers * lines_each
    records = [json.loads(line) for line in lines]
    assert Counter(r["run_id"] for r in records) == Counter(
        f"w{k}-{i}" for k in range(writers) for i in range(lines_each)
    )


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"ts": "2026-11-01T00:00:00Z", "workflow": "a"}\n{"ts": "2026-11-0')
    append(path, {"ts": "2026-11-02T00:00:00Z", "workflow": "b", "model": "claude-haiku-4-5"})
    log = read([path])
    assert [e.workflow for e in log.entries] == ["a", "b"]
    assert log.problems == [f"{path}:2: not a JSON object; skipped"]


def test_reader_takes_origin_records_and_skips_other_kinds(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        # An origin record from before cache writes were logged, with numbers as strings.
        '{"ts":"2026-11-03T10:00:00Z","workflow":"pr-review","tier":"deep","engine":"claude",'
        '"model":"claude-sonnet-4-6","input_tokens":"1200","cache_read_tokens":50,"output_tokens":300,'
        '"et":3000,"run_id":"77","context":"https://github.com/a/b/pull/1"}',
        '{"kind":"finding_verification","ts":"2026-11-03T10:01:00Z","verdict":"confirmed"}',
        "",
        "[1, 2]",
        '{"workflow": "no time"}',
    ]
    path.write_text("\n".join(lines) + "\n")
    log = read([path])
    assert len(log.entries) == 1
    e = log.entries[0]
    assert (e.name, e.model, e.run_key, e.batched, e.cost_usd, e.requests) == (
        "pr-review",
        "claude-sonnet-4-6",
        "77",
        False,
        None,
        None,
    )
    assert (e.usage.input_tokens, e.usage.cache_read_tokens, e.usage.cache_creation_tokens) == (1200, 50, 0)
    assert log.problems == [f"{path}:4: not a JSON object; skipped", f"{path}:5: no usable `ts`; skipped"]


def test_each_run_appends_one_record_matching_its_outputs(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"prompts/a.md": "Idea one.", "prompts/b.md": "Idea two."})
    for mode in ("sync", "batch"):
        run = run_action(ws, emulator, prompt_files="prompts/*.md", mode=mode, metrics_file="metrics/usage.jsonl")
        assert run.code == 0, run.log
    records = [json.loads(line) for line in (ws / "metrics/usage.jsonl").read_text().splitlines()]
    assert [(r["mode"], r["tier"]) for r in records] == [("sync", "sync"), ("batch", "batch")]
    assert records[0]["savings_usd"] == 0
    last = records[-1]
    assert (last["workload"], last["workflow"], last["mode"], last["tier"], last["requests"]) == (
        "nightly",
        "nightly",
        "batch",
        "batch",
        2,
    )
    assert last["cost_usd"] == pytest.approx(float(run.outputs["cost-usd"]), abs=1e-6)
    assert last["savings_usd"] == pytest.approx(float(run.outputs["savings-usd"]), abs=1e-6)
    assert last["input_tokens"] + last["cache_read_tokens"] + last["cache_creation_tokens"] == int(
        run.outputs["input-tokens"]
    )


def test_a_metrics_file_that_cannot_be_written_only_warns(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"prompts/a.md": "Idea one."})
    (ws / "metrics").mkdir()
    run = run_action(ws, emulator, prompt_files="prompts/*.md", mode="batch", metrics_file="metrics")
    assert run.code == 0, run.log
    assert run.outputs["status"] == "succeeded"
    assert "::warning::metrics-file: could not append" in run.log


def test_a_metrics_file_outside_the_workspace_is_refused_before_any_call(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"prompts/a.md": "Idea one."})
    run = run_action(ws, emulator, prompt_files="prompts/*.md", mode="batch", metrics_file="../elsewhere.jsonl")
    assert run.code == 2
    assert "metrics-file" in run.log and "outside the workspace" in run.log
    assert emulator.calls("create") == []
