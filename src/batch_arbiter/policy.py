"""Routing: which workloads go to batch, which stay synchronous, and why."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

# Runs nobody waits on: a scheduled or hand-started run can take the batch turnaround.
BATCH_EVENTS = ("schedule", "workflow_dispatch")


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: str
    mode: str
    upgrade: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    mode: str
    upgrade: bool
    rule: str
    reason: str


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "feature-ideation*",
        "batch",
        True,
        "feature ideation is batchable; the batch discount pays for the most capable model",
    ),
    Rule("*pr-review*", "sync", False, "PR review needs a real-time answer"),
    Rule("*health*", "sync", False, "health checks stay synchronous"),
    Rule("*fleet-monitor*", "sync", False, "fleet monitoring stays synchronous"),
    Rule("*dependency-audit*", "sync", False, "dependency audits stay synchronous"),
)


def normalise(workload: str) -> str:
    return "-".join(workload.lower().replace("_", " ").split())


def decide(
    workload: str,
    mode: str,
    event_name: str | None,
    upgrade: bool | None = None,
    rules: tuple[Rule, ...] = DEFAULT_RULES,
) -> Decision:
    name = normalise(workload)
    rule = next((r for r in rules if fnmatch.fnmatchcase(name, r.pattern)), None)
    if mode in ("batch", "sync"):
        decision = Decision(mode, rule.upgrade if rule else False, "mode input", f"the step asked for `mode: {mode}`")
    elif rule is not None:
        decision = Decision(rule.mode, rule.upgrade, f"policy `{rule.pattern}`", rule.reason)
    elif event_name in BATCH_EVENTS or event_name is None:
        why = f"started by `{event_name}`" if event_name else "run outside GitHub Actions"
        decision = Decision("batch", False, "default", f"no rule names `{name}`; {why}, so nobody waits on it")
    else:
        decision = Decision(
            "sync",
            False,
            "default",
            f"no rule names `{name}`; started by `{event_name}`, which may be waited on",
        )
    if upgrade is not None:
        decision = Decision(decision.mode, upgrade, decision.rule, decision.reason)
    if decision.mode == "sync":
        decision = Decision(decision.mode, False, decision.rule, decision.reason)
    return decision
