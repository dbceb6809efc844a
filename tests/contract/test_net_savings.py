"""What the runner costs, end to end on both providers: runner-minutes, runner-cost-usd and net-savings-usd
from the runner's environment and the event payload, the summary rows, the warning when waiting cost more
than batching saved, and the metrics log that `report` sums."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.core.metrics import read
from batch_arbiter.emulator import Emulator
from batch_arbiter.observatory.spend import build, to_markdown
from batch_arbiter.providers.registry import price_table
from support import ProviderProfile, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"p/a.md": "Propose a feature.", "p/b.md": "Propose another feature."})
    return root


def runner_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, visibility: str, kind: str = "github-hosted"
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"visibility": visibility, "private": visibility != "public"}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("RUNNER_ENVIRONMENT", kind)
    monkeypatch.setenv("RUNNER_OS", "Linux")
    monkeypatch.setenv("RUNNER_ARCH", "X64")


@pytest.mark.parametrize(
    ("visibility", "kind", "rate"),
    [("private", "github-hosted", 0.006), ("public", "github-hosted", 0.0), ("private", "self-hosted", 0.0)],
)
def test_runner_cost_from_the_environment(
    ws: Path,
    emulator: Emulator,
    provider: ProviderProfile,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    visibility: str,
    kind: str,
    rate: float,
) -> None:
    runner_env(monkeypatch, tmp_path, visibility=visibility, kind=kind)
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch")
    assert run.code == 0, run.log
    out = run.outputs
    assert out["runner-minutes"] == "1"  # a run of seconds is billed one minute
    assert float(out["runner-cost-usd"]) == pytest.approx(rate)
    assert f"| Runner | 1 min billed at ${rate:g}/min" in run.summary


def test_override_and_negative_net_savings_warn(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    # A dear runner: the fraction of a minute spent waiting costs more than the batch saved.
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", runner_cost_per_minute=50)
    assert run.code == 0, run.log
    out = run.outputs
    savings, net = float(out["savings-usd"]), float(out["net-savings-usd"])
    assert savings > 0 > net
    assert float(out["runner-cost-usd"]) == pytest.approx(50 * int(out["runner-minutes"]))
    assert "the runner-cost-per-minute input" in run.summary
    assert "(waiting cost more than batching saved)" in run.summary
    warnings = [line for line in run.log.splitlines() if "waiting cost more than batching saved::" in line]
    assert len(warnings) == 1 and "examples/batch-submit.yml" in warnings[0]


def test_positive_net_savings_and_the_metrics_log(
    ws: Path, emulator: Emulator, provider: ProviderProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner_env(monkeypatch, tmp_path, visibility="private")
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", metrics_file="m.jsonl")
    assert run.code == 0, run.log
    out = run.outputs
    savings, net = float(out["savings-usd"]), float(out["net-savings-usd"])
    # The figure is exactly the savings less the waited minutes at the rate.
    record = json.loads((ws / "m.jsonl").read_text())
    waited = record["waiting_cost_usd"]
    assert 0 < waited < 0.006
    assert net == pytest.approx(savings - waited, abs=1e-6)
    assert record["runner_minutes"] == 1 and record["runner_cost_usd"] == pytest.approx(0.006)
    assert record["net_savings_usd"] == pytest.approx(net, abs=1e-6)
    # `report` sums both figures.
    spend = build(read([ws / "m.jsonl", ws / "m.jsonl"]), price_table(None), date(2026, 1, 1))
    assert spend.total.runner_cost_usd == pytest.approx(0.012)
    assert spend.total.net_savings_usd == pytest.approx(2 * record["net_savings_usd"], abs=1e-6)
    assert "The runner cost $0.01" in to_markdown(spend)


def test_sync_runs_wait_on_nothing(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    run = provider.run(ws, emulator, prompt_files="p/*", mode="sync", runner_cost_per_minute=50)
    assert run.code == 0, run.log
    assert float(run.outputs["net-savings-usd"]) == float(run.outputs["savings-usd"]) == 0
    assert "for 0.00 min waiting on the batch" in run.summary


def test_cheap_waiting_leaves_net_savings_positive_without_a_warning(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    run = provider.run(ws, emulator, prompt_files="p/*", mode="batch", runner_cost_per_minute=0.000001)
    assert run.code == 0, run.log
    savings, net = float(run.outputs["savings-usd"]), float(run.outputs["net-savings-usd"])
    assert savings >= net > 0
    assert "waiting cost more than batching saved" not in run.log + run.summary


def test_a_run_that_leaves_its_batch_logs_its_runner_minutes(
    ws: Path, emulator: Emulator, provider: ProviderProfile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner_env(monkeypatch, tmp_path, visibility="private")
    emulator.config.processing_seconds = 600
    run = provider.run(
        ws, emulator, prompt_files="p/*", mode="batch", timeout_minutes=0, on_timeout="leave", metrics_file="m.jsonl"
    )
    assert run.code == 0 and run.outputs["status"] == "pending", run.log
    (record,) = [json.loads(line) for line in (ws / "m.jsonl").read_text().splitlines()]
    assert (record["mode"], record["cost_usd"], record["output_tokens"]) == ("pending", 0, 0)
    assert record["runner_minutes"] == 1 and record["runner_cost_usd"] == pytest.approx(0.006)
    # A public repository's runner costs nothing: such a pending run still leaves no record.
    runner_env(monkeypatch, tmp_path, visibility="public")
    again = provider.run(
        ws, emulator, prompt_files="p/*", mode="batch", timeout_minutes=0, on_timeout="leave", metrics_file="m2.jsonl"
    )
    assert again.outputs["status"] == "pending" and not (ws / "m2.jsonl").exists()
