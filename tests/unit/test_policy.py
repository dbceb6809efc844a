from __future__ import annotations

import pytest

from batch_arbiter.core.policy import decide


@pytest.mark.parametrize(
    ("workload", "mode", "upgrade"),
    [
        ("feature-ideation", "batch", True),
        ("Feature Ideation", "batch", True),
        ("daily-pr-review-health", "sync", False),
        ("actions-fleet-monitor", "sync", False),
        ("dependency-audit", "sync", False),
        ("nightly-health-check", "sync", False),
    ],
)
def test_default_rules(workload: str, mode: str, upgrade: bool) -> None:
    d = decide(workload, "auto", "schedule")
    assert (d.mode, d.upgrade) == (mode, upgrade)
    assert d.rule.startswith("policy")


def test_unknown_workload_follows_the_event() -> None:
    assert decide("weekly-report", "auto", "schedule").mode == "batch"
    assert decide("weekly-report", "auto", "workflow_dispatch").mode == "batch"
    assert decide("weekly-report", "auto", "pull_request").mode == "sync"
    assert decide("weekly-report", "auto", "push").mode == "sync"


def test_mode_input_overrides_and_sync_never_upgrades() -> None:
    d = decide("daily-pr-review-health", "batch", "pull_request")
    assert d.mode == "batch" and d.rule == "mode input"
    d = decide("feature-ideation", "sync", "schedule", upgrade=True)
    assert d.mode == "sync" and d.upgrade is False
    assert decide("weekly-report", "batch", "schedule", upgrade=True).upgrade is True
