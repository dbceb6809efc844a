"""The audit's cost rows: a workflow that uses the action but pays sync prices, and the runner minutes a
move to batch would spend waiting (a candidate whose saving is below them is told to collect later)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from batch_arbiter.cli import main
from batch_arbiter.core.metrics import append
from batch_arbiter.core.records import Usage
from batch_arbiter.observatory.audit import (
    ASSUMED_WAIT_MINUTES,
    PAYS_SYNC,
    Assumption,
    run_audit,
    to_json,
    to_markdown,
)
from batch_arbiter.providers.registry import price_table

ON = date(2026, 11, 24)
DAYS_PER_MONTH = 365.2425 / 12

USES_ACTION = """\
name: Nightly Digest
on:
  schedule:
    - cron: '0 2 * * *'
jobs:
  digest:
    runs-on: ubuntu-latest
    steps:
      - uses: your-org/batch-arbiter@v1
        with:
          prompt-files: prompts/*.md
          workload: nightly-digest
          mode: batch
"""
CANDIDATE = """\
name: Idea Bot
on:
  schedule:
    - cron: '0 3 * * *'
jobs:
  ideas:
    runs-on: ubuntu-latest
    steps:
      - uses: anthropics/claude-code-action@v1
        with:
          claude_args: --model claude-sonnet-5-5
          prompt: Propose a feature.
"""


def repo(tmp_path: Path, runs: dict[str, str]) -> Path:
    flows = tmp_path / ".github" / "workflows"
    flows.mkdir(parents=True)
    for name, text in runs.items():
        (flows / name).write_text(text)
    return flows


def log(
    tmp_path: Path,
    usage: Usage,
    *,
    batch_price: bool,
    waited: float | None,
    runs: int = 4,
    model: str = "claude-sonnet-5-5",
    provider: str = "anthropic",
) -> Path:
    """Runs of nightly-digest as the action records them: at the batch price, or (all fallen back) at sync."""
    prices = price_table()
    path = tmp_path / "metrics.jsonl"
    for day in range(runs):
        ts = datetime(2026, 11, 1, 2, tzinfo=UTC) + timedelta(days=day)
        sync = prices.cost(model, usage, ts.date(), batch=False)
        cost = prices.cost(model, usage, ts.date(), batch=True) if batch_price else sync
        record = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "workflow": "Nightly Digest",
            "workload": "nightly-digest",
            "model": model,
            "provider": provider,
            "mode": "batch" if batch_price else "batch+fallback",
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "run_id": str(1000 + day),
            "requests": 3,
            "cost_usd": cost,
            "sync_cost_usd": sync,
        }
        if waited is not None:
            record["waited_minutes"] = waited
        append(path, record)
    return path


BIG = Usage(input_tokens=400_000, output_tokens=40_000)
SMALL = Usage(input_tokens=2_000, output_tokens=200)


# Both providers: the audit reads provider facts only, and must price each on its own table.
PROVIDERS = {"anthropic": "claude-sonnet-5-5", "gemini": "gemini-3.8-flash"}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_uses_the_action_but_pays_sync_prices(tmp_path: Path, provider: str) -> None:
    model = PROVIDERS[provider]
    flows = repo(
        tmp_path, {"digest.yml": USES_ACTION.replace("mode: batch", f"mode: batch\n          provider: {provider}")}
    )
    metrics = log(tmp_path, BIG, batch_price=False, waited=None, model=model, provider=provider)
    audit = run_audit(flows, [metrics], on=ON, runner_rate=(0.0, "free"))
    (w,) = audit.workloads
    assert w.verdict == PAYS_SYNC and w in audit.candidates
    m = w.monthly()
    assert m is not None
    prices = price_table()
    sync = prices.cost(model, BIG, ON, batch=False) * DAYS_PER_MONTH
    batch = prices.cost(model, BIG, ON, batch=True) * DAYS_PER_MONTH
    assert m[2] == pytest.approx(sync, rel=1e-6) and m[3] == pytest.approx(batch, rel=1e-6)
    assert any("recorded cost equals its sync cost" in n for n in w.notes)
    md = to_markdown(audit)
    assert "**pays sync prices**" in md and "1 batch candidate" in md
    assert to_json(audit)["batch_candidates"] == ["nightly-digest"]


def test_batched_at_batch_prices_stays_already_batched(tmp_path: Path) -> None:
    flows = repo(tmp_path, {"digest.yml": USES_ACTION})
    audit = run_audit(flows, [log(tmp_path, BIG, batch_price=True, waited=5.0)], on=ON)
    (w,) = audit.workloads
    assert w.verdict == "already batched" and w.waiting_usd is None and not audit.candidates


def test_saving_below_the_waiting_cost_points_at_collect_later(tmp_path: Path) -> None:
    flows = repo(tmp_path, {"ideas.yml": CANDIDATE})
    audit = run_audit(
        flows,
        on=ON,
        assume=Assumption(SMALL.input_tokens, SMALL.output_tokens),
        runner_rate=(0.006, "GitHub-hosted linux-x64"),
    )
    (w,) = audit.workloads
    assert w.verdict == "batch candidate" and w.wait_basis == "assumed"
    assert w.waiting_usd == pytest.approx(DAYS_PER_MONTH * ASSUMED_WAIT_MINUTES * 0.006)
    assert w.net_saving is not None and w.net_saving < 0
    assert any("less than the runner minutes spent waiting" in n and "collect later" in n for n in w.notes)
    totals = audit.totals()
    assert totals["net_savings_usd"] == pytest.approx(totals["savings_usd"] - totals["runner_waiting_usd"])
    md = to_markdown(audit)
    assert "$0.006 a minute (GitHub-hosted linux-x64)" in md and "| Runner waiting | Net |" in md


def test_a_large_saving_beats_the_wait_and_measured_waits_are_used(tmp_path: Path) -> None:
    flows = repo(tmp_path, {"digest.yml": USES_ACTION})
    audit = run_audit(flows, [log(tmp_path, BIG, batch_price=False, waited=12.0)], on=ON)
    (w,) = audit.workloads
    assert w.verdict == PAYS_SYNC and w.wait_minutes == 12.0 and w.wait_basis == "measured over 4 runs"
    assert w.waiting_usd == pytest.approx(DAYS_PER_MONTH * 12 * 0.006)
    assert w.net_saving is not None and w.net_saving > 0
    assert not any("collect later" in n for n in w.notes)


def test_cli_takes_the_runner_price_and_the_wait(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = repo(tmp_path, {"ideas.yml": CANDIDATE})
    argv = ["audit", "--workflows", str(flows), "--assume-tokens", "2000:200", "--json", "--on", ON.isoformat()]
    assert main([*argv, "--runner-cost-per-minute", "0.5", "--assume-wait-minutes", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runner_usd_per_minute"] == 0.5 and data["runner_rate_basis"] == "the runner-cost-per-minute input"
    (w,) = data["workloads"]
    assert w["wait_minutes_per_run"] == 2
    assert w["monthly_usd"]["runner_waiting"] == pytest.approx(DAYS_PER_MONTH * 2 * 0.5, abs=1e-3)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["runner_usd_per_minute"] == 0.006
