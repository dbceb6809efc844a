"""The spend report: what was spent and saved, per workload, model and month, from the metrics log."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.cli import main
from batch_arbiter.core.metrics import append, read
from batch_arbiter.observatory.spend import Spend, build, to_json, to_markdown
from batch_arbiter.providers.registry import price_table
from observatory import build_metrics

IDEATION_RUN = (36_000 * 5 + 90_000 * 0.5 + 24_000 * 6.25 + 9_000 * 25) / 1e6
HEALTH_RUN = (9_000 * 3 + 1_500 * 15) / 1e6
FLEET_RUN = (40_000 * 1 + 800 * 5) / 1e6
DEPENDENCY_RUN = (25_000 * 0.30 + 2_000 * 2.50) / 1e6
WEEKLY_RUN = (20_000 * 3 + 4_000 * 15) / 1e6
DIGEST_SYNC = (60_000 * 2 + 90_000 * 0.10 + 10_000 * 2.50 + 12_000 * 10) / 1e6


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_metrics(tmp_path_factory.mktemp("metrics") / "token-usage.jsonl")


@pytest.fixture(scope="module")
def spend(log_path: Path) -> Spend:
    return build(read([log_path]), price_table())


def test_per_workload_by_hand(spend: Spend) -> None:
    w = spend.workloads
    assert list(w) == [
        "feature-ideation",
        "docs-digest",
        "daily-pr-review-health",
        "actions-fleet-monitor",
        "Weekly Report",
        "dependency-audit",
    ]
    assert len(w["feature-ideation"].runs) == 28 and w["feature-ideation"].records == 84
    assert w["feature-ideation"].cost_usd == pytest.approx(28 * IDEATION_RUN)
    assert w["feature-ideation"].savings_usd == 0
    assert w["dependency-audit"].cost_usd == pytest.approx(14 * DEPENDENCY_RUN)
    digest = w["docs-digest"]
    # 20 weekday runs at half price; on one of them 1 of 6 requests ran synchronously.
    assert (len(digest.runs), len(digest.batch_runs), digest.requests) == (20, 20, 120)
    assert digest.sync_cost_usd == pytest.approx(20 * DIGEST_SYNC, abs=1e-6)
    assert digest.cost_usd == pytest.approx(20 * DIGEST_SYNC / 2 + DIGEST_SYNC / 12, abs=1e-6)
    assert digest.savings_percent == pytest.approx(100 * (20 / 2 - 1 / 12) / 20, abs=1e-4)
    total = 28 * (IDEATION_RUN + HEALTH_RUN + FLEET_RUN) + 14 * DEPENDENCY_RUN + 4 * WEEKLY_RUN + 20 * DIGEST_SYNC
    assert spend.total.sync_cost_usd == pytest.approx(total, abs=1e-6)
    assert spend.total.savings_usd == pytest.approx(digest.savings_usd)
    assert spend.priced_from_tokens == 84 + 28 + 28 + 14 + 4


def test_per_model_and_per_month(spend: Spend) -> None:
    sonnet = spend.models["claude-sonnet-4-6"]
    assert len(sonnet.runs) == 28 + 4 and sonnet.cost_usd == pytest.approx(28 * HEALTH_RUN + 4 * WEEKLY_RUN)
    assert list(spend.months) == ["2026-10", "2026-11"]
    october = spend.months["2026-10"]
    # 26-31 October: six days of the daily workloads, pushes on the 26th, 28th and 30th, one Monday
    # report, five weekday digests.
    assert len(october.runs) == 6 * 3 + 3 + 1 + 5
    expected = 6 * (IDEATION_RUN + HEALTH_RUN + FLEET_RUN) + 3 * DEPENDENCY_RUN + WEEKLY_RUN + 5 * DIGEST_SYNC / 2
    assert october.cost_usd == pytest.approx(expected, abs=1e-6)
    assert sum(m.cost_usd for m in spend.months.values()) == pytest.approx(spend.total.cost_usd)


def test_since_keeps_only_later_records(log_path: Path) -> None:
    later = build(read([log_path]), price_table(), since=date(2026, 11, 1))
    assert list(later.months) == ["2026-11"]
    assert later.first == date(2026, 11, 1) and later.last == date(2026, 11, 22)
    assert len(later.workloads["feature-ideation"].runs) == 22


def test_token_only_records_are_priced_on_their_own_date(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tokens = {"model": "claude-sonnet-5-5", "cache_read_tokens": 1_000_000, "workflow": "w"}
    # Sonnet 5.5 cache reads: $0.20/MTok until 2026-10-06, $0.10 from 2026-10-07.
    append(path, {"ts": "2026-10-01T00:00:00Z", "run_id": "1", **tokens})
    append(path, {"ts": "2026-10-10T00:00:00Z", "run_id": "2", **tokens})
    append(path, {"ts": "2026-10-11T00:00:00Z", "run_id": "3", "tier": "batch", **tokens})
    append(path, {"ts": "2026-10-12T00:00:00Z", "run_id": "4", "workflow": "w", "model": "gpt-9", "input_tokens": 5})
    s = build(read([path]), price_table())
    assert s.total.cost_usd == pytest.approx(0.20 + 0.10 + 0.05)
    assert s.total.sync_cost_usd == pytest.approx(0.20 + 0.10 + 0.10)
    assert s.unpriced == {"gpt-9": 1}
    assert s.total.usage.input_tokens == 5 and s.total.unpriced_records == 1
    assert "No price for `gpt-9` (1)" in to_markdown(s)


def test_markdown_and_json(spend: Spend) -> None:
    md = to_markdown(spend)
    assert md.startswith("## batch-arbiter spend report: 2026-10-26 to 2026-11-22")
    for heading in ("### Per workload", "### Per model", "### Per month"):
        assert heading in md
    assert "```mermaid\n" in md and 'x-axis ["2026-10", "2026-11"]' in md
    assert f"| feature-ideation | 28 | 0 | 4,200k | 252k | ${28 * IDEATION_RUN:,.2f} |" in md
    data = to_json(spend)
    assert data["total"]["runs"] == 122 and data["total"]["batch_runs"] == 20
    assert data["workloads"]["docs-digest"]["savings_usd"] == pytest.approx(spend.workloads["docs-digest"].savings_usd)


def test_cli(log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--metrics", str(log_path), "--since", "2026-11-16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["first"], data["last"]) == ("2026-11-16", "2026-11-22")
    assert main(["report", "--metrics", str(log_path.parent / "missing.jsonl")]) == 2
    assert "metrics file not found" in capsys.readouterr().err
    empty = log_path.parent / "empty.jsonl"
    empty.write_text("")
    assert main(["report", "--metrics", str(empty)]) == 0
    assert "no token records" in capsys.readouterr().out
