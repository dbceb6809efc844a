"""The runner's price per minute (public, private, self-hosted, override, by OS and date) and billed minutes."""

from __future__ import annotations

from datetime import date

import pytest

from batch_arbiter.core.runner_cost import RunnerCost, RunnerRate, billed_minutes, listed_rate, runner_rate

ON = date(2026, 12, 2)
HOSTED = {"RUNNER_ENVIRONMENT": "github-hosted", "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64"}
PRIVATE = {"repository": {"private": True, "visibility": "private"}}
PUBLIC = {"repository": {"private": False, "visibility": "public"}}


def test_private_linux_pays_the_2026_price() -> None:
    rate = runner_rate(HOSTED, PRIVATE, None, ON)
    assert rate.usd_per_minute == 0.006
    assert "linux-x64" in rate.why and "private repository" in rate.why


def test_public_repository_on_a_standard_runner_is_free() -> None:
    assert runner_rate(HOSTED, PUBLIC, None, ON).usd_per_minute == 0.0
    # Older payloads say only `private`.
    assert runner_rate(HOSTED, {"repository": {"private": False}}, None, ON).usd_per_minute == 0.0


def test_self_hosted_is_free_even_on_a_private_repository() -> None:
    rate = runner_rate({**HOSTED, "RUNNER_ENVIRONMENT": "self-hosted"}, PRIVATE, None, ON)
    assert rate.usd_per_minute == 0.0 and "self-hosted" in rate.why


def test_the_override_wins_over_everything() -> None:
    assert runner_rate(HOSTED, PUBLIC, 0.022, ON) == RunnerRate(0.022, "the runner-cost-per-minute input")
    assert runner_rate({"RUNNER_ENVIRONMENT": "self-hosted"}, None, 0.5, ON).usd_per_minute == 0.5


@pytest.mark.parametrize(
    ("os_name", "arch", "price"),
    [("Windows", "X64", 0.010), ("macOS", "ARM64", 0.062), ("Linux", "ARM64", 0.005), ("Plan9", "MIPS", 0.006)],
)
def test_price_by_os_and_arch(os_name: str, arch: str, price: float) -> None:
    env = {**HOSTED, "RUNNER_OS": os_name, "RUNNER_ARCH": arch}
    assert runner_rate(env, PRIVATE, None, ON).usd_per_minute == price


def test_unknown_visibility_is_priced_as_private_and_says_so() -> None:
    rate = runner_rate(HOSTED, None, None, ON)
    assert rate.usd_per_minute == 0.006 and "visibility unknown" in rate.why


def test_prices_are_dated() -> None:
    assert listed_rate("linux-x64", date(2025, 6, 1)) == 0.008
    assert listed_rate("linux-x64", date(2026, 1, 1)) == 0.006
    assert listed_rate("linux-x64", date(2024, 1, 1)) is None


def test_minutes_round_up_as_billed() -> None:
    assert [billed_minutes(s) for s in (0, 0.1, 59.9, 60, 60.5, 3600)] == [0, 1, 1, 1, 2, 60]


def test_waiting_cost_is_the_waited_minutes_at_the_rate() -> None:
    cost = RunnerCost(RunnerRate(0.006, "x"), minutes=61, waited_minutes=60.0)
    assert cost.cost_usd == pytest.approx(0.366) and cost.waiting_cost_usd == pytest.approx(0.36)
