"""What the job's runner costs while the action holds it: the price per minute, from the runner's kind and
the repository's visibility (or the `runner-cost-per-minute` input), and the minutes billed."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

RUNNER_PRICING = "core/data/runner-pricing.tsv"
# The runner priced when the environment does not say which one runs (outside GitHub Actions).
DEFAULT_RUNNER = "linux-x64"


@dataclass(frozen=True, slots=True)
class RunnerRate:
    """USD per minute of the job's runner, and why that price (for the summary and the audit)."""

    usd_per_minute: float
    why: str


@dataclass(frozen=True, slots=True)
class RunnerCost:
    """The runner's share of a run: the step's billed minutes and their cost, and the part spent waiting."""

    rate: RunnerRate
    minutes: int
    waited_minutes: float

    @property
    def cost_usd(self) -> float:
        """The step's billed minutes at the runner's price."""
        return self.minutes * self.rate.usd_per_minute

    @property
    def waiting_cost_usd(self) -> float:
        """What the minutes spent waiting on a batch cost on the runner: what batching has to beat."""
        return self.waited_minutes * self.rate.usd_per_minute


@functools.cache
def price_table() -> dict[str, list[tuple[date, float]]]:
    """The bundled runner prices by runner, oldest row first."""
    text = resources.files("batch_arbiter").joinpath(RUNNER_PRICING).read_text(encoding="utf-8")
    rows = csv.DictReader(
        io.StringIO("".join(line for line in text.splitlines(True) if not line.startswith("#"))), dialect="excel-tab"
    )
    table: dict[str, list[tuple[date, float]]] = {}
    for row in rows:
        table.setdefault(row["runner"], []).append(
            (date.fromisoformat(row["effective_from"]), float(row["usd_per_minute"]))
        )
    return {k: sorted(v) for k, v in table.items()}


def listed_rate(runner: str, on: date) -> float | None:
    """The table's price of `runner` on `on`; None for a runner (or a date) it has no row for."""
    rows = [price for since, price in price_table().get(runner, []) if since <= on]
    return rows[-1] if rows else None


def event_payload(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The workflow's event payload (`GITHUB_EVENT_PATH`), whose repository visibility prices the runner;
    None when there is none or it cannot be read."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def visibility(event: Mapping[str, Any] | None) -> str | None:
    """`public` or `private` from the event payload's repository, None when the payload does not say."""
    repo = event.get("repository") if isinstance(event, Mapping) else None
    if not isinstance(repo, Mapping):
        return None
    shown = repo.get("visibility")
    if isinstance(shown, str) and shown:
        return "public" if shown == "public" else "private"
    private = repo.get("private")
    return None if not isinstance(private, bool) else ("private" if private else "public")


def runner_rate(
    env: Mapping[str, str], event: Mapping[str, Any] | None, override: float | None, on: date
) -> RunnerRate:
    """The job's runner price per minute: the override when given; zero on a self-hosted runner or a
    public repository (standard runners are free there); else the table's price for RUNNER_OS and
    RUNNER_ARCH (Linux x64 when unknown), assuming a private repository when the payload does not say."""
    if override is not None:
        return RunnerRate(override, "the runner-cost-per-minute input")
    if env.get("RUNNER_ENVIRONMENT", "").lower() == "self-hosted":
        return RunnerRate(0.0, "self-hosted runner: no per-minute charge")
    seen = visibility(event)
    if seen == "public":
        return RunnerRate(0.0, "public repository: standard GitHub-hosted runners are free")
    runner = f"{env.get('RUNNER_OS', '').lower()}-{env.get('RUNNER_ARCH', '').lower()}"
    price = listed_rate(runner, on)
    if price is None:
        runner, price = DEFAULT_RUNNER, listed_rate(DEFAULT_RUNNER, on) or 0.0
    where = "private repository" if seen == "private" else "repository visibility unknown, priced as private"
    return RunnerRate(price, f"GitHub-hosted {runner}, {where}, at the {on.year} price")


def billed_minutes(seconds: float) -> int:
    """Minutes as GitHub bills them: rounded up to the whole minute."""
    return max(0, math.ceil(max(0.0, seconds) / 60 - 1e-9))
