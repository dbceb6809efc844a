"""Routing policy, the cost-neutral upgrade, effort mapping, the budget guard and `plan`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.core.catalog import clamp_effort
from batch_arbiter.core.policy import PolicyError, decide, load_policy, upgrade_model
from batch_arbiter.emulator import Emulator, Fault
from batch_arbiter.providers.registry import price_table
from support import run_action, write_prompts

PAID = ("create", "messages")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "Idea A " * 50, "prompts/b.md": "Idea B " * 50})
    return root


def paid_calls(emulator: Emulator) -> int:
    return sum(len(emulator.calls(route)) for route in PAID)


def test_upgrade_picks_most_capable_model_not_above_sync_price_on_either_side_of_a_price_change(
    tmp_path: Path,
) -> None:
    extra = tmp_path / "prices.tsv"
    # A price cut for Fable 5.2 from December: its batch price then fits under Sonnet 5.5's sync price.
    extra.write_text("claude-fable-5-2*\t2026-12-01\t4\t0.10\t5\t20\n", encoding="utf-8")
    table = price_table(extra)
    before = upgrade_model("anthropic", "claude-sonnet-5-5", table, date(2026, 11, 30))
    after = upgrade_model("anthropic", "claude-sonnet-5-5", table, date(2026, 12, 1))
    assert before.model == "claude-opus-5-5"
    assert before.batch_rate == (2.0, 10.0) and before.sync_rate == (2.0, 10.0)
    assert after.model == "claude-fable-5-2"
    assert after.batch_rate[0] <= after.sync_rate[0] and after.batch_rate[1] <= after.sync_rate[1]
    # The top model cannot go higher; a cheap model climbs only as far as its sync price allows.
    assert upgrade_model("anthropic", "claude-fable-5-2", table, date(2026, 11, 30)).model == "claude-fable-5-2"
    assert upgrade_model("anthropic", "claude-haiku-4-5", table, date(2026, 11, 30)).model == "claude-sonnet-5-5"
    assert upgrade_model("anthropic", "claude-haiku-5-5", table, date(2026, 11, 30)).model == "claude-haiku-5-5"


@pytest.mark.parametrize(
    ("requested", "supported", "expected"),
    [
        ("max", ("low", "medium", "high", "xhigh", "max"), "max"),
        ("max", ("low", "medium", "high"), "high"),
        ("xhigh", ("low", "medium", "high", "max"), "high"),
        ("low", ("high", "max"), "high"),
        ("high", (), None),
    ],
)
def test_effort_clamping(requested: str, supported: tuple[str, ...], expected: str | None) -> None:
    assert clamp_effort(requested, supported) == expected


def test_policy_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(
        "rules:\n"
        "  - match: dependency-audit\n    mode: batch\n    model: claude-opus-5\n    effort: low\n"
        "    max-wait-minutes: 30\n    reason: audits are read the next morning\n"
        "batch-events: [schedule]\n",
        encoding="utf-8",
    )
    policy = load_policy(path)
    d = decide("dependency-audit", "auto", "push", None, policy)
    assert (d.mode, d.model, d.effort, d.max_wait_minutes) == ("batch", "claude-opus-5", "low", 30)
    assert d.reason == "audits are read the next morning"
    assert decide("daily-pr-review-health", "auto", "schedule", None, policy).mode == "sync"  # defaults kept
    assert decide("weekly-report", "auto", "workflow_dispatch", None, policy).mode == "sync"  # not a batch event
    path.write_text("rules:\n  - match: x\n    mode: later\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"policy\.yml: rules\.0\.mode"):
        load_policy(path)
    path.write_text("rules: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_feature_ideation_run_is_upgraded_and_says_so(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", workload="feature-ideation", model="claude-sonnet-5-5")
    assert run.code == 0, run.log
    assert run.outputs["mode"] == "batch" and run.outputs["model"] == "claude-opus-5-5"
    params = emulator.calls("create")[0].body["requests"][0]["params"]
    assert params["model"] == "claude-opus-5-5" and params["output_config"] == {"effort": "max"}
    assert "asked for `claude-sonnet-5-5`, ran `claude-opus-5-5` at effort max" in run.summary
    assert "| `claude-opus-5-5` in a batch | $2 | $10 |" in run.summary
    assert "| `claude-sonnet-5-5` synchronously | $2 | $10 |" in run.summary


def test_dependency_audit_stays_sync_and_is_not_upgraded(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", workload="dependency-audit", upgrade="true")
    assert run.code == 0, run.log
    assert run.outputs["mode"] == "sync" and run.outputs["model"] == "claude-sonnet-5-5"
    assert emulator.calls("create") == [] and len(emulator.calls("messages")) == 2
    assert "dependency audits stay synchronous" in run.summary and "Upgrade" not in run.summary


def test_unsupported_effort_is_clamped_with_a_warning(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", model="claude-opus-4-5", effort="max")
    assert run.code == 0, run.log
    assert "::warning::claude-opus-4-5 does not take effort max; using high" in run.log
    params = emulator.calls("create")[0].body["requests"][0]["params"]
    assert params["output_config"] == {"effort": "high"}


def test_capabilities_fall_back_to_the_table_when_the_endpoint_fails(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("models", 500, times=-1)]
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", model="claude-haiku-4-5", effort="low")
    assert run.code == 0, run.log
    assert "output_config" not in emulator.calls("create")[0].body["requests"][0]["params"]
    assert "sent without an effort" in run.log


def test_over_budget_run_is_refused_with_nothing_submitted(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", budget_usd=0.01)
    assert run.code == 2
    assert paid_calls(emulator) == 0
    assert len(emulator.calls("count_tokens")) == 2  # input counted by the free endpoint
    assert "::error title=batch-arbiter%3A over budget::estimated cost $0.08" in run.log
    assert "nothing was submitted" in run.log
    under = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", budget_usd=1)
    assert under.code == 0 and len(emulator.calls("create")) == 1


def test_plan_sends_no_paid_call(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="plan", workload="feature-ideation")
    assert run.code == 0, run.log
    assert paid_calls(emulator) == 0
    assert {c.route for c in emulator.calls()} <= {"models", "count_tokens"}
    assert run.outputs["status"] == "planned" and run.outputs["mode"] == "batch"
    assert run.outputs["model"] == "claude-opus-5-5"
    assert float(run.outputs["sync-cost-usd"]) == pytest.approx(2 * float(run.outputs["cost-usd"]))
    assert "## batch-arbiter plan: feature-ideation" in run.summary
    assert not (ws / "batch-results").exists()


def test_budget_estimate_prices_each_request_in_its_own_context_tier() -> None:
    from batch_arbiter.core.records import PromptRequest
    from batch_arbiter.providers import RunSpec
    from batch_arbiter.run.budget import estimate

    long = PromptRequest("long", "long.md", "x" * 900_000, max_tokens=1000)  # ~225k tokens: the >200k tier
    short = PromptRequest("short", "short.md", "x" * 4_000, max_tokens=1000)
    est = estimate([long, short], None, RunSpec("gemini-2.5-pro"), price_table(), date(2026, 11, 24))
    # gemini-2.5-pro: 1.25 / 10 per MTok up to 200k prompt tokens, 2.50 / 15 above.
    expected_sync = (225_001 * 2.50 + 1000 * 15 + 1_001 * 1.25 + 1000 * 10) / 1e6
    assert est.sync_usd == pytest.approx(expected_sync)
    assert est.batch_usd == pytest.approx(expected_sync / 2)
