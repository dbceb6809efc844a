"""Routing: which workloads go to batch, which stay synchronous, on which model, and why."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batch_arbiter.core.catalog import RANKING, base_model, is_live
from batch_arbiter.core.pricing import BATCH_DISCOUNT, PriceTable, PricingError
from batch_arbiter.core.records import DecisionMode
from batch_arbiter.errors import InputError

# Runs nobody waits on: a scheduled or hand-started run can take the batch turnaround.
BATCH_EVENTS: tuple[str, ...] = ("schedule", "workflow_dispatch")


class PolicyError(InputError):
    """The policy file is unreadable or invalid; the message names the file and the field."""


class Rule(BaseModel):
    """One entry of a policy file's `rules:` list."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    match: str = Field(min_length=1, description="glob over the workload name (lower-case, hyphenated)")
    mode: DecisionMode
    upgrade: bool = False
    model: str | None = None
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    max_wait_minutes: float | None = Field(default=None, gt=0, allow_inf_nan=False, alias="max-wait-minutes")
    reason: str = ""


class Policy(BaseModel):
    """A policy file: its rules first, then (unless `defaults: false`) the built-in ones."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rules: list[Rule] = Field(default_factory=list)
    defaults: bool = True
    batch_events: list[str] = Field(default_factory=lambda: list(BATCH_EVENTS), alias="batch-events")

    def all_rules(self) -> list[Rule]:
        """The rules in the order they are tried: the file's own, then the built-in ones unless turned off."""
        return self.rules + (list(DEFAULT_RULES) if self.defaults else [])


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        match="feature-ideation*",
        mode="batch",
        upgrade=True,
        reason="feature ideation is batchable; the batch discount pays for the most capable model",
    ),
    Rule(match="*pr-review*", mode="sync", reason="PR review needs a real-time answer"),
    Rule(match="*health*", mode="sync", reason="health checks stay synchronous"),
    Rule(match="*fleet-monitor*", mode="sync", reason="fleet monitoring stays synchronous"),
    Rule(match="*dependency-audit*", mode="sync", reason="dependency audits stay synchronous"),
)


def load_policy(path: Path | None) -> Policy:
    """The policy in `path`, or the built-in one without a file; raises PolicyError naming the bad field."""
    if path is None:
        return Policy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path.name}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path.name} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path.name} is not valid YAML: {exc}") from None
    except RecursionError:
        raise PolicyError(f"policy file {path.name} is nested too deeply to be a policy") from None
    try:
        return Policy.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PolicyError(f"policy file {path.name}: {loc}: {err['msg']}") from None


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a workload runs and which rule said so; `model`, `effort` and `max_wait_minutes` are that rule's."""

    mode: DecisionMode
    upgrade: bool
    rule: str
    reason: str
    model: str | None = None
    effort: str | None = None
    max_wait_minutes: float | None = None


def normalise(workload: str) -> str:
    """The workload name as rules match it: lower-case, words joined by hyphens (`Daily Digest` -> `daily-digest`)."""
    return "-".join(workload.lower().replace("_", " ").split())


def decide(
    workload: str,
    mode: str,
    event_name: str | None,
    upgrade: bool | None = None,
    policy: Policy | None = None,
) -> Decision:
    """Route one workload: the `mode` input wins, then the first matching rule, then whether anyone waits on the event.

    `upgrade` (the input) overrides the rule's; a sync run is never upgraded.
    """
    policy = policy or Policy()
    name = normalise(workload)
    rule = next((r for r in policy.all_rules() if fnmatch.fnmatchcase(name, r.match)), None)
    if mode in ("batch", "sync", "collect"):
        decision = Decision(
            "sync" if mode == "sync" else "batch",
            rule.upgrade if rule else False,
            "mode input",
            f"the step asked for mode {mode}",
        )
    elif rule is not None:
        decision = Decision(
            rule.mode,
            rule.upgrade,
            f"policy rule {rule.match}",
            rule.reason or f"the policy sends {rule.match} to {rule.mode}",
        )
    elif event_name is None or event_name in policy.batch_events:
        why = f"started by {event_name}" if event_name else "run outside GitHub Actions"
        decision = Decision("batch", False, "default", f"no rule names {name}; {why}, so nobody waits on it")
    else:
        decision = Decision(
            "sync", False, "default", f"no rule names {name}; started by {event_name}, which may be waited on"
        )
    if rule is not None:
        decision = replace(decision, model=rule.model, effort=rule.effort, max_wait_minutes=rule.max_wait_minutes)
    if upgrade is not None:
        decision = replace(decision, upgrade=upgrade)
    if decision.mode == "sync":
        decision = replace(decision, upgrade=False)
    return decision


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The model an upgraded batch runs on, with the per-million-token rates that show its price did not rise."""

    model: str
    # (batch input, batch output) of the chosen model vs (sync input, sync output) of the asked one.
    batch_rate: tuple[float, float]
    sync_rate: tuple[float, float]


def upgrade_model(provider: str, requested: str, prices: PriceTable, on: date) -> Upgrade:
    """The most capable model whose batch per-token price is not above `requested`'s sync price."""
    asked = prices.rate(requested, on)
    ceiling = (asked.input, asked.output)
    ranking = RANKING.get(provider, ())
    base = base_model(requested)
    # Never trade down: only models at least as capable as the one asked for are candidates.
    limit = ranking.index(base) if base in ranking else len(ranking)
    for candidate in ranking[:limit]:
        # Only models live on the run's date: never onto one that is retired or closed to new use.
        if not is_live(candidate, on):
            continue
        try:
            rate = prices.rate(candidate, on)
        except PricingError:
            continue
        batch = (rate.input * BATCH_DISCOUNT, rate.output * BATCH_DISCOUNT)
        if batch[0] <= ceiling[0] and batch[1] <= ceiling[1]:
            return Upgrade(candidate, batch, ceiling)
    return Upgrade(requested, (asked.input * BATCH_DISCOUNT, asked.output * BATCH_DISCOUNT), ceiling)
