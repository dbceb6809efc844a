"""`batch-arbiter audit`: which scheduled LLM workloads could run as batches, and what that saves a month.

Reads every workflow file, classifies each workload that calls an LLM with the routing policy (as
the action would route it when the schedule starts it), and estimates its monthly cost now and with
batch: average tokens per run (measured in the metrics log, or assumed on request) x runs per month
(from the cron schedule, or measured) x the price table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from batch_arbiter.core.console import Console
from batch_arbiter.core.metrics import Entry, Log, read
from batch_arbiter.core.policy import Decision, Policy, decide, load_policy, normalise, upgrade_model
from batch_arbiter.core.pricing import PriceTable, PricingError
from batch_arbiter.core.records import Usage
from batch_arbiter.core.runner_cost import RunnerRate, event_payload, runner_rate
from batch_arbiter.core.settings import Settings
from batch_arbiter.core.tools import CLIENT_TOOLS, SERVER_TOOLS, TOOLS, from_cli_tools
from batch_arbiter.errors import InputError
from batch_arbiter.files import write_own
from batch_arbiter.markdown import BATCH_COLOUR, SYNC_COLOUR, bar_chart, escape, money, table
from batch_arbiter.observatory.cron import DAYS_PER_MONTH
from batch_arbiter.observatory.output import emit
from batch_arbiter.observatory.scan import LlmStep, WorkflowFile, scan
from batch_arbiter.providers.registry import REGISTRY, info_for_engine, info_for_model, price_table


class Verdict(StrEnum):
    """What the audit says of one workload."""

    CANDIDATE = "batch candidate"
    # Uses the action, but its recorded cost is its sync cost: routing kept it sync, or it fell back.
    PAYS_SYNC = "pays sync prices"
    BATCHED = "already batched"
    SYNC = "stays sync"
    NO_LLM = "no LLM call"


CANDIDATE, BATCHED, SYNC, NO_LLM = Verdict.CANDIDATE, Verdict.BATCHED, Verdict.SYNC, Verdict.NO_LLM
PAYS_SYNC = Verdict.PAYS_SYNC
VERDICT_ORDER = {CANDIDATE: 0, PAYS_SYNC: 1, BATCHED: 2, SYNC: 3, NO_LLM: 4}
# Workloads the report would move to batch prices.
MOVABLE = frozenset({CANDIDATE, PAYS_SYNC})
# A measured cost this close to the sync cost is the sync cost (rounding in the recorded figures).
SYNC_RATIO = 0.999
# Minutes a batch is assumed to keep the runner waiting when no run of the workload recorded it.
ASSUMED_WAIT_MINUTES = 60.0
AGENT_KINDS = {"claude-code-action", "claude CLI", "gemini CLI"}
EXIT_OK, EXIT_BAD_INPUT = 0, 2


class AuditError(InputError):
    """The audit cannot start: a missing directory, an unreadable policy or pricing file."""


@dataclass(frozen=True, slots=True)
class Assumption:
    """Tokens per run to assume for a workload the metrics log has never seen."""

    input_tokens: int
    output_tokens: int
    model: str | None = None


@dataclass
class Estimate:
    basis: str  # measured | assumed
    runs_seen: int
    first_seen: date | None
    last_seen: date | None
    # Average tokens per run, per model.
    per_run: dict[str, dict[str, float]]
    sync_per_run: float
    batch_per_run: float
    # What the workload's runs cost now relative to all-sync (1.0 sync; below 1 when already batched).
    now_ratio: float
    now_ratio_basis: str
    unpriced: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return sorted(self.per_run)

    def tokens_per_run(self) -> dict[str, float]:
        total: dict[str, float] = defaultdict(float)
        for usage in self.per_run.values():
            for key, value in usage.items():
                total[key] += value
        return dict(total)


@dataclass
class Workload:
    workflow: WorkflowFile
    name: str
    verdict: Verdict
    decision: Decision | None
    runs_per_month: float | None
    runs_basis: str | None  # schedule | metrics
    estimate: Estimate | None = None
    notes: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    # Minutes a run waits on its batch (measured, or assumed), and what they cost a month on the runner.
    wait_minutes: float | None = None
    wait_basis: str = ""
    waiting_usd: float | None = None

    @property
    def steps(self) -> list[LlmStep]:
        return self.workflow.steps

    @property
    def net_saving(self) -> float | None:
        """The monthly saving of moving to batch, less the runner minutes spent waiting on the batches."""
        m = self.monthly()
        if m is None:
            return None
        return m[2] - m[3] - (self.waiting_usd or 0.0)

    def monthly(self) -> tuple[float, float, float, float] | None:
        """(all sync, all batch, now, with the batch routing the policy allows), in USD a month."""
        if self.estimate is None or self.runs_per_month is None:
            return None
        e, runs = self.estimate, self.runs_per_month
        sync, batch = e.sync_per_run * runs, e.batch_per_run * runs
        now = sync * e.now_ratio
        with_batch = batch if self.verdict in MOVABLE else now
        return sync, batch, now, with_batch


@dataclass
class Audit:
    root: str
    files: int
    workloads: list[Workload]
    problems: list[str]
    metrics: Log
    unmatched: dict[str, int]
    prices_on: date
    # USD a minute of the runner that waits on a batch, and why that price.
    runner_rate: float = 0.0
    runner_rate_why: str = ""

    @property
    def estimated(self) -> list[Workload]:
        return [w for w in self.workloads if w.monthly() is not None]

    def totals(self) -> dict[str, float]:
        rows = [m for w in self.workloads if (m := w.monthly()) is not None]
        now = sum(m[2] for m in rows)
        with_batch = sum(m[3] for m in rows)
        waiting = sum(w.waiting_usd or 0.0 for w in self.workloads if w.monthly() is not None)
        return {
            "now_usd": now,
            "with_batch_usd": with_batch,
            "savings_usd": now - with_batch,
            "runner_waiting_usd": waiting,
            "net_savings_usd": now - with_batch - waiting,
        }

    @property
    def candidates(self) -> list[Workload]:
        return [w for w in self.workloads if w.verdict in MOVABLE]


# -- building the audit ------------------------------------------------------------------------------


def run_audit(
    workflows_dir: Path,
    metrics_files: Sequence[Path] = (),
    *,
    prices: PriceTable | None = None,
    policy: Policy | None = None,
    on: date | None = None,
    assume: Assumption | None = None,
    repo_root: Path | None = None,
    runner_rate: tuple[float, str] = (0.006, "GitHub-hosted Linux x64 (the default)"),
    wait_minutes: float = ASSUMED_WAIT_MINUTES,
) -> Audit:
    if not workflows_dir.is_dir():
        raise AuditError(f"workflows directory not found: {workflows_dir}")
    prices = prices or price_table()
    policy = policy or Policy()
    on = on or datetime.now(UTC).date()
    files = scan(workflows_dir, repo_root)
    log = read(metrics_files)
    called = {rel for wf in files for rel in wf.local_calls}
    workloads: list[Workload] = []
    problems: list[str] = []
    for wf in files:
        problems += wf.problems
        if not wf.valid:
            continue
        if wf.rel in called and set(wf.events) <= {"workflow_call"}:
            continue  # its steps are audited as part of the workflows that call it
        workloads.append(_classify(wf, policy))
    unmatched = _attach_metrics(workloads, log.entries)
    for w in workloads:
        _estimate(w, prices, on, assume)
        _waiting(w, runner_rate[0], wait_minutes)
    workloads.sort(key=lambda w: (VERDICT_ORDER[w.verdict], w.name.lower()))
    return Audit(str(workflows_dir), len(files), workloads, problems + log.problems, log, unmatched, on, *runner_rate)


def _waiting(w: Workload, rate: float, assumed: float) -> None:
    """What a workload moved to batch would pay its runner to wait, a month; a candidate whose saving is
    below that is told to collect later instead."""
    if w.verdict not in MOVABLE or w.monthly() is None or w.runs_per_month is None:
        return
    waited = [e.waited_minutes for e in w.entries if e.waited_minutes]
    if waited:
        w.wait_minutes, w.wait_basis = sum(waited) / len(waited), f"measured over {len(waited)} runs"
    else:
        w.wait_minutes, w.wait_basis = assumed, "assumed"
    w.waiting_usd = w.runs_per_month * w.wait_minutes * rate
    net = w.net_saving
    if net is not None and net < 0 and w.waiting_usd:
        saving = w.monthly() or (0, 0, 0, 0)
        w.notes.append(
            f"batching saves {money(saving[2] - saving[3])} a month, less than the runner minutes spent waiting "
            f"({money(w.waiting_usd)}): submit now and collect later (examples/batch-submit.yml and "
            "batch-collect.yml) so no runner waits"
        )


def _classify(wf: WorkflowFile, policy: Policy) -> Workload:
    arbiter = next((s for s in wf.steps if s.is_arbiter), None)
    name = (arbiter.inputs.get("workload") if arbiter else None) or wf.name
    scheduled = bool(wf.schedules)
    event = "schedule" if scheduled else _main_event(wf.events)
    runs = wf.runs_per_month if scheduled else None
    basis = "schedule" if scheduled else None
    if not wf.steps:
        return Workload(wf, name, NO_LLM, None, runs, basis)
    mode = (arbiter.inputs.get("mode") or "auto").lower() if arbiter else "auto"
    decision = decide(name, mode if mode in ("batch", "sync") else "auto", event, policy=policy)
    notes: list[str] = []
    if decision.rule == "default" and not arbiter and normalise(wf.stem) != normalise(name):
        # The action routes by workload name; a file name that a rule knows is the name to give it.
        by_file = decide(wf.stem, "auto", event, policy=policy)
        if by_file.rule != "default":
            decision = by_file
            name = wf.stem
            notes.append(f"routed by its file name: give the step `workload: {wf.stem}`")
    verdict = (BATCHED if arbiter else CANDIDATE) if decision.mode == "batch" else SYNC
    if not scheduled:
        triggers = ", ".join(wf.events) or "no trigger"
        notes.append(f"not on a schedule ({triggers})")
    if verdict == CANDIDATE:
        notes += _agent_notes([s for s in wf.steps if s.kind in AGENT_KINDS])
    return Workload(wf, name, verdict, decision, runs, basis, notes=notes)


def _agent_notes(steps: Sequence[LlmStep]) -> list[str]:
    """What the agent steps of a batch candidate need: nothing when every tool they are allowed is one a
    batched agent has ("batchable as an agent"), else which tool blocks them, or that they do not say."""
    if not steps:
        return []
    client, server = ", ".join(CLIENT_TOOLS), ", ".join(SERVER_TOOLS)
    catalogue = f"{client} (read-only, inside the workspace) and {server} (run by the provider)"
    mapped = [from_cli_tools(s.tools) for s in steps if s.tools is not None]
    blockers = {name: why for m in mapped for name, why in m.blockers}
    if blockers:
        listed = ", ".join(f"`{name}` {why}" for name, why in blockers.items())
        return [f"needs reshaping: {listed}; a batched agent has only {catalogue}"]
    if len(mapped) < len(steps):
        return [
            "needs reshaping: runs an agent session that does not say which tools it may use; list them with "
            f"`--allowed-tools` from what a batched agent has ({catalogue}), or gather the context first and "
            "send one prompt per request"
        ]
    tools = [t for t in TOOLS if any(t in m.tools for m in mapped)]
    return [f"batchable as an agent: tools {', '.join(tools) or 'none'}"]


def _main_event(events: Sequence[str]) -> str | None:
    others = [e for e in events if e != "workflow_dispatch"]
    if others:
        return others[0]
    return "workflow_dispatch" if events else None


def _keys(w: Workload) -> set[str]:
    return {normalise(n) for n in (w.name, w.workflow.name, w.workflow.stem, w.workflow.rel) if n}


def _attach_metrics(workloads: Sequence[Workload], entries: Iterable[Entry]) -> dict[str, int]:
    owners: dict[str, Workload] = {}
    for w in workloads:
        for key in _keys(w):
            owners.setdefault(key, w)
    unmatched: dict[str, int] = defaultdict(int)
    found: dict[tuple[str, str], Workload | None] = {}
    for entry in entries:
        names = (entry.name, entry.workflow)
        if names not in found:
            keys = (normalise(n) for n in names)
            found[names] = next((owners[k] for k in keys if k and k in owners), None)
        owner = found[names]
        if owner is None:
            unmatched[entry.name] += 1
        else:
            owner.entries.append(entry)
    return dict(sorted(unmatched.items()))


def _estimate(w: Workload, prices: PriceTable, on: date, assume: Assumption | None) -> None:
    if w.verdict == NO_LLM:
        return
    if w.entries:
        w.estimate = _measured(w.entries, prices, on)
        if w.runs_per_month is None:
            w.runs_per_month = _measured_rate(w.entries)
            w.runs_basis = "metrics" if w.runs_per_month is not None else None
    elif assume is not None:
        model = assume.model or _step_model(w, prices) or _default_model(_engine(w))
        usage = Usage(input_tokens=assume.input_tokens, output_tokens=assume.output_tokens)
        w.estimate = _priced({model: usage}, 1, prices, on, "assumed", [], None, None)
        if w.verdict == BATCHED:
            w.estimate.now_ratio = w.estimate.batch_per_run / w.estimate.sync_per_run if w.estimate.sync_per_run else 1
            w.estimate.now_ratio_basis = "assumed: every request answered by the batch"
    e = w.estimate
    if w.verdict == BATCHED and e is not None and e.basis == "measured" and e.now_ratio >= SYNC_RATIO:
        # The action ran, but every answer was paid at sync prices: routing kept it sync, or it fell back.
        w.verdict = PAYS_SYNC
        saving = (e.sync_per_run - e.batch_per_run) * (w.runs_per_month or 0)
        w.notes.append(
            "uses batch-arbiter, but its recorded cost equals its sync cost (routing kept it synchronous, or "
            f"it fell back): as a batch it would save {money(saving)} a month"
        )
    if w.estimate is not None and w.verdict in MOVABLE and w.decision is not None and w.decision.upgrade:
        _upgrade_note(w, prices, on)


def _measured(entries: Sequence[Entry], prices: PriceTable, on: date) -> Estimate:
    runs = {e.run_key for e in entries}
    usage: dict[str, Usage] = defaultdict(Usage)
    for e in entries:
        usage[e.model or "(no model)"].add(e.usage)
    estimate = _priced(usage, len(runs), prices, on, "measured", [], entries[0].ts.date(), entries[-1].ts.date())
    paid = [e for e in entries if e.cost_usd is not None and e.sync_cost_usd]
    if paid:
        estimate.now_ratio = sum(e.cost_usd or 0.0 for e in paid) / sum(e.sync_cost_usd or 0.0 for e in paid)
        estimate.now_ratio_basis = f"measured: recorded cost / sync cost of {len(paid)} runs"
    return estimate


def _priced(
    usage: dict[str, Usage],
    runs: int,
    prices: PriceTable,
    on: date,
    basis: str,
    unpriced: list[str],
    first: date | None,
    last: date | None,
) -> Estimate:
    sync = batch = 0.0
    per_run: dict[str, dict[str, float]] = {}
    for model, u in sorted(usage.items()):
        per_run[model] = {
            "input": u.input_tokens / runs,
            "cache_read": u.cache_read_tokens / runs,
            "cache_write": u.cache_creation_tokens / runs,
            "output": u.output_tokens / runs,
        }
        try:
            sync += prices.cost(model, u, on, batch=False) / runs
            batch += prices.cost(model, u, on, batch=True) / runs
        except PricingError:
            unpriced.append(model)
    return Estimate(basis, runs, first, last, per_run, sync, batch, 1.0, "synchronous calls", unpriced)


def _measured_rate(entries: Sequence[Entry]) -> float | None:
    """Runs per month seen in the log: the intervals between first and last run, scaled to a month."""
    starts: dict[str, datetime] = {}
    for e in entries:
        starts.setdefault(e.run_key, e.ts)
    times = sorted(starts.values())
    if len(times) < 2:
        return None
    days = (times[-1] - times[0]).total_seconds() / 86400
    return (len(times) - 1) / days * DAYS_PER_MONTH if days > 0 else None


def _default_model(engine: str) -> str:
    vendor = info_for_engine(engine) or next(iter(REGISTRY.values()))
    return vendor.default_model


def _engine(w: Workload) -> str:
    return w.steps[0].engine if w.steps else "claude"


def _step_model(w: Workload, prices: PriceTable) -> str | None:
    return next((s.model for s in w.steps if s.model and prices.knows(s.model)), None)


def _upgrade_note(w: Workload, prices: PriceTable, on: date) -> None:
    e = w.estimate
    assert e is not None and w.runs_per_month is not None
    model = max(e.per_run, key=lambda m: sum(e.per_run[m].values()))
    vendor = info_for_model(model)
    if vendor is None or not prices.knows(model):
        return
    try:
        up = upgrade_model(vendor.name, model, prices, on)
        tokens = e.per_run[model]
        usage = Usage(
            input_tokens=round(tokens["input"]),
            cache_read_tokens=round(tokens["cache_read"]),
            cache_creation_tokens=round(tokens["cache_write"]),
            output_tokens=round(tokens["output"]),
        )
        cost = prices.cost(up.model, usage, on, batch=True) * w.runs_per_month
    except PricingError:
        return
    if up.model != model:
        w.notes.append(
            f"the policy upgrades it to {up.model} on batch: {money(cost)} a month at the same token counts "
            "(more effort usually means more output tokens)"
        )


# -- rendering ---------------------------------------------------------------------------------------


def _runs(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _tokens(value: float) -> str:
    return f"{value:,.0f}"


def _trigger(wf: WorkflowFile) -> str:
    crons = [f"`{s.expr}`" for s in wf.schedules]
    others = [e for e in wf.events if e != "schedule"]
    parts = (["cron " + ", ".join(crons)] if crons else []) + ([", ".join(others)] if others else [])
    return "; ".join(parts) or "none"


def _steps_cell(w: Workload) -> str:
    if not w.steps:
        return "none"
    seen: list[str] = []
    for s in w.steps:
        text = f"{s.kind} ({escape(s.job)}: {escape(s.step)})"
        if text not in seen:
            seen.append(text)
    return "<br>".join(seen[:4]) + (f"<br>+{len(seen) - 4} more" if len(seen) > 4 else "")


def _why(w: Workload) -> str:
    parts = []
    if w.decision is not None:
        parts.append(f"{escape(w.decision.reason)} ({escape(w.decision.rule)})")
    parts += [escape(n) for n in w.notes]
    return "; ".join(parts) or "no step calls an LLM"


def _basis(w: Workload) -> str:
    e = w.estimate
    if e is None:
        return "no metrics for this workload"
    if e.basis == "measured":
        span = f"{e.first_seen} to {e.last_seen}" if e.first_seen != e.last_seen else f"{e.first_seen}"
        text = f"measured: {e.runs_seen} run{'s' if e.runs_seen != 1 else ''}, {span}"
    else:
        text = "assumed tokens per run (`--assume-tokens`)"
    if w.runs_basis == "metrics":
        text += "; runs/month measured"
    if e.unpriced:
        text += "; no price for " + ", ".join(f"`{m}`" for m in e.unpriced)
    return text


def to_markdown(audit: Audit) -> str:
    t = audit.totals()
    llm = [w for w in audit.workloads if w.verdict != NO_LLM]
    lines = [
        f"## batch-arbiter audit: {len(audit.candidates)} batch candidate"
        + ("s" if len(audit.candidates) != 1 else "")
        + f" in {audit.files} workflow file{'s' if audit.files != 1 else ''}",
        "",
    ]
    if audit.estimated:
        lines += [
            f"Monthly LLM cost of the {len(audit.estimated)} workload{'s' if len(audit.estimated) != 1 else ''} "
            f"with figures: **{money(t['now_usd'])} now, {money(t['with_batch_usd'])} with batch**, "
            f"saving **{money(t['savings_usd'])} a month** (prices of {audit.prices_on.isoformat()}); "
            f"less {money(t['runner_waiting_usd'])} of runner minutes spent waiting on the batches, "
            f"**{money(t['net_savings_usd'])} net**.",
            "",
        ]
    elif llm and not audit.metrics.files:
        lines += ["No metrics log was given, so no cost is estimated; the verdicts stand on their own.", ""]
    elif llm:
        lines += ["No workload could be costed: the metrics log has no runs of them.", ""]
    if llm:
        lines += ["### Workloads that call an LLM", ""]
        rows = [
            [
                f"**{escape(w.name)}**",
                f"`{w.workflow.rel}`",
                _trigger(w.workflow),
                _runs(w.runs_per_month) + (" (measured)" if w.runs_basis == "metrics" else ""),
                _steps_cell(w),
                f"**{w.verdict}**",
                _why(w),
            ]
            for w in llm
        ]
        lines += table(["Workload", "File", "Trigger", "Runs/month", "LLM steps", "Verdict", "Why"], rows, right=[3])
        lines.append("")
    quiet = [w for w in audit.workloads if w.verdict == NO_LLM]
    if quiet:
        names = ", ".join(f"`{w.workflow.rel}`" for w in quiet)
        lines += [f"No LLM call found in: {names}.", ""]
    if llm:
        lines += ["### Monthly cost: now vs with batch", ""]
        rows = []
        for w in llm:
            m = w.monthly()
            e = w.estimate
            tokens = e.tokens_per_run() if e else {}
            token_cell = (
                " / ".join(_tokens(tokens.get(k, 0.0)) for k in ("input", "cache_read", "cache_write", "output"))
                if e
                else "–"
            )
            models = ", ".join(f"`{x}`" for x in e.models) if e else "–"
            waiting = money(w.waiting_usd) if w.waiting_usd is not None else "–"
            net_saving = w.net_saving
            net = money(net_saving) if net_saving is not None and w.waiting_usd is not None else "–"
            cells = [money(v) for v in m[2:]] + [money(m[2] - m[3]), waiting, net] if m else ["–"] * 5
            rows.append([escape(w.name), w.verdict, models, token_cell, _runs(w.runs_per_month), *cells, _basis(w)])
        if audit.estimated:
            keys = ("now_usd", "with_batch_usd", "savings_usd", "runner_waiting_usd", "net_savings_usd")
            total_cells = [f"**{money(t[k])}**" for k in keys]
            rows.append(["**Total**", "", "", "", "", *total_cells, ""])
        lines += table(
            [
                "Workload",
                "Verdict",
                "Model",
                "Tokens/run (input / cache read / cache write / output)",
                "Runs/month",
                "Now",
                "With batch",
                "Saves",
                "Runner waiting",
                "Net",
                "Basis",
            ],
            rows,
            right=[3, 4, 5, 6, 7, 8, 9],
        )
        lines.append("")
    charted = [w for w in audit.estimated]
    if charted:
        months = [w.monthly() for w in charted]
        lines += bar_chart(
            "Monthly cost per workload (USD)",
            [w.name for w in charted],
            [
                ("every call synchronous", SYNC_COLOUR, [m[0] for m in months if m]),
                ("with the batch routing the policy allows", BATCH_COLOUR, [m[3] for m in months if m]),
            ],
            "USD per month",
        )
        lines.append("")
    lines += ["### How these figures were worked out", ""]
    lines += _method(audit)
    if audit.unmatched:
        names = ", ".join(f"{escape(k)} ({v})" for k, v in audit.unmatched.items())
        lines += ["", f"Metrics records that match no workflow here (records): {names}."]
    if audit.problems:
        lines += ["", "### Problems", ""] + [f"- {escape(p)}" for p in audit.problems]
    return "\n".join(lines) + "\n"


def _method(audit: Audit) -> list[str]:
    log = audit.metrics
    measured = [w for w in audit.workloads if w.estimate and w.estimate.basis == "measured"]
    assumed = [w for w in audit.workloads if w.estimate and w.estimate.basis == "assumed"]
    lines = [
        "- **Runs per month** (assumed from the schedule): the average number of times the cron expressions fire "
        "in a calendar month, over a whole 400-year calendar cycle. It assumes every scheduled run happens; "
        "GitHub may delay or drop scheduled runs when it is busy. A workflow without a schedule uses the rate "
        "seen in the metrics log (measured), when the log has two runs or more.",
    ]
    if log.entries:
        span = f"{log.entries[0].ts.date()} to {log.entries[-1].ts.date()}"
        lines.append(
            f"- **Tokens per run** (measured): {len(log.entries)} records from "
            f"{', '.join(f'`{Path(f).name}`' for f in log.files)} ({span}), grouped into runs by run id; "
            f"{len(measured)} workload{'s' if len(measured) != 1 else ''} matched."
        )
    else:
        lines.append("- **Tokens per run**: no metrics log was given, so nothing was measured.")
    if assumed:
        lines.append(
            f"- **Assumed tokens per run** for {', '.join(escape(w.name) for w in assumed)}: "
            "from `--assume-tokens`; the model is the one the step names, else the provider's default."
        )
    lines += [
        f"- **Prices**: the pricing table on {audit.prices_on.isoformat()}; batch at half price on every token "
        "category (on Gemini, cache reads get no second discount).",
        "- **Now** is every call synchronous, except for workloads already batched, where it is the recorded "
        "cost of their runs (fallbacks included) scaled to a month. **With batch** moves the batch candidates "
        "to batch prices and leaves the rest as they are.",
        f"- **Runner waiting**: a job that waits on its batch holds its runner; at ${audit.runner_rate:g} a minute "
        f"({escape(audit.runner_rate_why)}), for the minutes its runs waited (measured from the metrics log's "
        f"`waited_minutes`, else assumed {ASSUMED_WAIT_MINUTES:g} per run unless `--assume-wait-minutes` says "
        "otherwise). **Net** is the saving less that; where it is negative, submit now and collect later "
        "(`examples/batch-submit.yml` and `batch-collect.yml`), which holds no runner while the batch runs.",
    ]
    return lines


def to_json(audit: Audit) -> dict[str, Any]:
    def workload(w: Workload) -> dict[str, Any]:
        m = w.monthly()
        e = w.estimate
        return {
            "workload": w.name,
            "workflow": w.workflow.name,
            "file": w.workflow.rel,
            "events": w.workflow.events,
            "schedules": [
                {"cron": s.expr, "runs_per_month": s.cron.runs_per_month if s.cron else None}
                for s in w.workflow.schedules
            ],
            "runs_per_month": w.runs_per_month,
            "runs_per_month_basis": w.runs_basis,
            "llm_steps": [
                {
                    "job": s.job,
                    "step": s.step,
                    "kind": s.kind,
                    "engine": s.engine,
                    "model": s.model,
                    "evidence": s.evidence,
                }
                for s in w.steps
            ],
            "verdict": w.verdict,
            "rule": w.decision.rule if w.decision else None,
            "reason": w.decision.reason if w.decision else None,
            "upgrade": w.decision.upgrade if w.decision else False,
            "notes": w.notes,
            "estimate": None
            if e is None
            else {
                "basis": e.basis,
                "runs_seen": e.runs_seen,
                "first_seen": e.first_seen.isoformat() if e.first_seen else None,
                "last_seen": e.last_seen.isoformat() if e.last_seen else None,
                "tokens_per_run": e.per_run,
                "sync_usd_per_run": round(e.sync_per_run, 6),
                "batch_usd_per_run": round(e.batch_per_run, 6),
                "now_ratio": round(e.now_ratio, 6),
                "now_ratio_basis": e.now_ratio_basis,
                "unpriced_models": e.unpriced,
            },
            "monthly_usd": None
            if m is None
            else {
                "all_sync": round(m[0], 4),
                "all_batch": round(m[1], 4),
                "now": round(m[2], 4),
                "with_batch": round(m[3], 4),
                "savings": round(m[2] - m[3], 4),
                "runner_waiting": None if w.waiting_usd is None else round(w.waiting_usd, 4),
                "net_savings": None if w.waiting_usd is None else round(w.net_saving or 0.0, 4),
            },
            "wait_minutes_per_run": w.wait_minutes,
            "wait_minutes_basis": w.wait_basis or None,
        }

    return {
        "workflows_dir": audit.root,
        "workflow_files": audit.files,
        "prices_on": audit.prices_on.isoformat(),
        "metrics_files": audit.metrics.files,
        "metrics_records": len(audit.metrics.entries),
        "workloads": [workload(w) for w in audit.workloads],
        "batch_candidates": [w.name for w in audit.candidates],
        "monthly_usd": {k: round(v, 4) for k, v in audit.totals().items()},
        "runner_usd_per_minute": audit.runner_rate,
        "runner_rate_basis": audit.runner_rate_why,
        "unmatched_metrics": audit.unmatched,
        "problems": audit.problems,
    }


# -- entry points ------------------------------------------------------------------------------------


def _assumption(text: str | None, model: str | None) -> Assumption | None:
    if not text:
        return None
    try:
        given, out = text.split(":", 1)
        return Assumption(int(given), int(out), model)
    except ValueError:
        raise AuditError(f"--assume-tokens {text!r}: expected INPUT:OUTPUT, e.g. 40000:4000") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`batch-arbiter audit`'s flags."""
    parser.add_argument("--workflows", type=Path, default=Path(".github/workflows"), help="workflows directory")
    parser.add_argument("--metrics", type=Path, nargs="*", default=[], metavar="FILE", help="token-metrics JSONL")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--policy", type=Path, help="YAML routing policy (the built-in one when omitted)")
    parser.add_argument("--pricing", type=Path, help="extra pricing rows (TSV)")
    parser.add_argument("--on", type=date.fromisoformat, help="price date, YYYY-MM-DD (default today)")
    parser.add_argument("--assume-tokens", metavar="INPUT:OUTPUT", help="tokens per run for unmeasured workloads")
    parser.add_argument("--assume-model", metavar="MODEL", help="model for unmeasured workloads")
    parser.add_argument("--repo-root", type=Path, help="where scripts named by run: steps live")
    parser.add_argument(
        "--runner-cost-per-minute",
        type=float,
        metavar="USD",
        help="price of a runner minute spent waiting on a batch (default: the GitHub-hosted Linux x64 price)",
    )
    parser.add_argument(
        "--assume-wait-minutes",
        type=float,
        default=ASSUMED_WAIT_MINUTES,
        metavar="MINUTES",
        help="minutes a batch run waits, for workloads whose metrics do not say",
    )


def command(args: argparse.Namespace, console: Console) -> int:
    """Audit the workflows named by `args` and print the report (Markdown, or JSON with `--json`)."""
    try:
        missing = [str(p) for p in args.metrics if not p.is_file()]
        if missing:
            raise AuditError(f"metrics file not found: {', '.join(missing)}")
        audit = run_audit(
            args.workflows,
            args.metrics,
            prices=price_table(args.pricing),
            policy=load_policy(args.policy),
            on=args.on,
            assume=_assumption(args.assume_tokens, args.assume_model),
            repo_root=args.repo_root,
            runner_rate=_rate(runner_rate({}, None, args.runner_cost_per_minute, args.on or datetime.now(UTC).date())),
            wait_minutes=args.assume_wait_minutes,
        )
    except InputError as exc:
        print(f"batch-arbiter audit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return emit(console, audit.problems, to_json(audit), to_markdown(audit), as_json=args.json)


def run_step(settings: Settings, runner: Console) -> int:
    """`mode: audit` in a workflow: audit the repository's workflows into the step summary."""
    workspace = runner.workspace.resolve()

    def inside(value: str, name: str) -> Path:
        path = (workspace / value).resolve()
        if not path.is_relative_to(workspace):
            raise AuditError(f"input `{name}`: {value!r} is outside the workspace")
        return path

    try:
        metrics: list[Path] = []
        for pattern in (settings.metrics_file or "").splitlines():
            pattern = pattern.strip()
            if not pattern:
                continue
            if any(c in pattern for c in "*?["):
                if Path(pattern).is_absolute():
                    raise AuditError(f"input `metrics-file`: the pattern {pattern!r} must be relative to the workspace")
                matches = sorted(workspace.glob(pattern))
            else:
                matches = [inside(pattern, "metrics-file")]
            found = [inside(str(m.relative_to(workspace)), "metrics-file") for m in matches if m.is_file()]
            if not found:
                runner.warning(f"metrics-file: nothing at {pattern}; costs need a metrics log from earlier runs")
            metrics += found
        audit = run_audit(
            workspace / ".github" / "workflows",
            metrics,
            prices=price_table(inside(settings.pricing_file, "pricing-file") if settings.pricing_file else None),
            policy=load_policy(inside(settings.policy_file, "policy-file") if settings.policy_file else None),
            repo_root=workspace,
            runner_rate=_rate(
                runner_rate(
                    os.environ, event_payload(os.environ), settings.runner_cost_per_minute, datetime.now(UTC).date()
                )
            ),
        )
        out_dir = inside(settings.output_dir, "output-dir")
    except InputError as exc:
        runner.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    for problem in audit.problems:
        runner.warning(problem, title="batch-arbiter audit")
    markdown = to_markdown(audit)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The output directory lies in a checked-out workspace: a planted symlink must not redirect the write.
    write_own(out_dir / "audit.md", markdown)
    write_own(out_dir / "audit.json", json.dumps(to_json(audit), indent=2) + "\n")
    runner.write_summary(markdown)
    totals = audit.totals()
    runner.set_outputs(
        {
            "mode": "audit",
            "status": "succeeded",
            # Relative to the workspace: later steps do not see the container's /github/workspace.
            "results-dir": _workspace_relative(out_dir, runner.workspace),
            "results-file": _workspace_relative(out_dir / "audit.json", runner.workspace),
            "batch-candidates": ",".join(w.name for w in audit.candidates),
            "monthly-savings-usd": f"{totals['savings_usd']:.2f}",
            "monthly-net-savings-usd": f"{totals['net_savings_usd']:.2f}",
        }
    )
    return EXIT_OK


def _rate(rate: RunnerRate) -> tuple[float, str]:
    return rate.usd_per_minute, rate.why


def _workspace_relative(path: Path, workspace: Path) -> str:
    root = workspace.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
