"""What a run tells its user: step outputs and the Markdown step summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from batch_arbiter.core.policy import Decision, Upgrade
from batch_arbiter.core.records import Status
from batch_arbiter.markdown import code, escape
from batch_arbiter.run.budget import Estimate
from batch_arbiter.run.engine import RunResult

MAX_FAILURE_ROWS = 50


@dataclass(frozen=True)
class RunContext:
    """What the report says of a run besides its result: the routing, the model asked for and run, where results are."""

    workload: str
    provider: str
    model: str
    effort: str | None
    decision: Decision
    results_dir: Path
    results_file: Path
    requested_model: str | None = None
    requested_effort: str | None = None
    upgrade: Upgrade | None = None
    notes: tuple[str, ...] = ()
    # The run's default max_tokens and where it came from (the input, or the default for the effort).
    max_tokens: int | None = None
    max_tokens_why: str = ""
    # Outputs name paths relative to the workspace: a container's /github/workspace is not the path the
    # job's later steps see on the runner.
    workspace: Path | None = None
    # results.json, when the run has a response schema.
    results_json: Path | None = None

    def shown(self, path: Path) -> str:
        """`path` as the job's later steps see it: relative to the workspace when inside it."""
        if self.workspace is not None and path.is_relative_to(self.workspace):
            return path.relative_to(self.workspace).as_posix()
        return str(path)


def outputs(ctx: RunContext, run: RunResult) -> dict[str, str]:
    """The step outputs `action.yml` declares, as strings; `input-tokens` includes cache reads and writes."""
    t = run.totals
    u = t.usage
    return {
        "mode": run.mode,
        "status": run.status,
        "batch-id": run.batch_id or "",
        "model": ctx.model,
        "results-dir": ctx.shown(ctx.results_dir),
        "results-file": ctx.shown(ctx.results_file),
        "results-json": ctx.shown(ctx.results_json) if ctx.results_json is not None else "",
        "succeeded": str(t.succeeded),
        "failed": str(t.failed),
        "incomplete": str(t.incomplete),
        "input-tokens": str(u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens),
        "output-tokens": str(u.output_tokens),
        "cost-usd": f"{t.cost_usd:.6f}",
        "sync-cost-usd": f"{t.sync_cost_usd:.6f}",
        "savings-usd": f"{t.savings_usd:.6f}",
        "savings-percent": f"{t.savings_percent:.1f}",
        **_runner_outputs(run),
    }


def summary(ctx: RunContext, run: RunResult) -> str:
    """The Markdown step summary: status, tokens, cost against sync, routing, events, and requests without a result."""
    t = run.totals
    u = t.usage
    via = ", ".join(f"{n} via {v}" for v, n in sorted(t.via.items())) or "none ran"
    if t.tiers["flex"]:
        # Flex is a sync tier at the batch price: worth telling apart from standard sync calls.
        via += f"; {t.tiers['flex']} sync on the Flex tier at half price"
    effort = f" (effort {ctx.effort})" if ctx.effort else ""
    lines = [
        f"## batch-arbiter: {escape(ctx.workload)}",
        "",
        "| | |",
        "|---|---|",
        f"| Status | **{run.status}** |",
        f"| Mode | {run.mode} |",
        f"| Provider | {ctx.provider} |",
        f"| Model | {code(ctx.model)}{effort} |",
        *_max_tokens_row(ctx),
    ]
    if run.batch_id:
        lines.append(f"| Batch | {code(run.batch_id)} |")
    lines += [
        f"| Requests | {t.requests}: {t.succeeded} succeeded, {t.failed} failed"
        + (f", {t.incomplete} incomplete (cut short at max_tokens)" if t.incomplete else "")
        + (f", {t.statuses[Status.PENDING]} pending" if t.statuses[Status.PENDING] else "")
        + f" ({via}) |",
        *_structured(ctx, run),
        f"| Tokens | {u.input_tokens:,} input, {u.cache_read_tokens:,} cache read, "
        f"{u.cache_creation_tokens:,} cache write, {u.output_tokens:,} output |",
        f"| Cost | ${t.cost_usd:,.4f} |",
        f"| Same tokens synchronously | ${t.sync_cost_usd:,.4f} |",
        f"| Savings | **${t.savings_usd:,.4f} ({t.savings_percent:.1f}%)** |",
        *_runner_rows(run),
        "",
        *_routing(ctx),
    ]
    if t.unpriced_models:
        names = ", ".join(code(m) for m in sorted(t.unpriced_models))
        lines += ["", f"No price known for {names}: its cost is left out of the totals."]
    if run.events:
        # Events quote API errors: code spans keep them from rendering links, images or HTML.
        lines += ["", "### What happened", ""] + [f"- {code(e)}" for e in run.events]
    failures = _failures(ctx.results_file)
    if failures:
        lines += ["", "### Requests without a result", "", "| custom_id | status | error |", "|---|---|---|"]
        for cid, status, error in failures[:MAX_FAILURE_ROWS]:
            lines.append(f"| {code(cid)} | {status} | {code(error[:300]) if error else ''} |")
        if len(failures) > MAX_FAILURE_ROWS:
            lines.append(f"\n{len(failures) - MAX_FAILURE_ROWS} more in `results.jsonl`.")
    if t.incomplete:
        lines += [
            "",
            f"{t.incomplete} answer{'s' if t.incomplete != 1 else ''} stopped at the output limit (`max_tokens`, "
            "thinking included), the text kept with status `incomplete`; a larger `max-tokens` lets them finish.",
        ]
    if run.status == "pending" and run.batch_id:
        lines += ["", f"Collect it later with {code('batch-id: ' + run.batch_id)}."]
    return "\n".join(lines) + "\n"


def _structured(ctx: RunContext, run: RunResult) -> list[str]:
    """The summary row counting answers held to the response schema, when the run has one."""
    if ctx.results_json is None:
        return []
    v = run.totals.validation
    return [
        f"| Structured results | {v['valid']} valid, {v['fixed']} invalid then fixed by a rerun, "
        f"{v['invalid']} invalid ({code(ctx.shown(ctx.results_json))}) |"
    ]


def net_savings(run: RunResult) -> float:
    """The savings less what the runner cost while the run waited on its batches."""
    return run.totals.savings_usd - (run.runner.waiting_cost_usd if run.runner else 0.0)


def _runner_outputs(run: RunResult) -> dict[str, str]:
    if run.runner is None:
        return {}
    return {
        "runner-minutes": str(run.runner.minutes),
        "runner-cost-usd": f"{run.runner.cost_usd:.6f}",
        "net-savings-usd": f"{net_savings(run):.6f}",
    }


def _runner_rows(run: RunResult) -> list[str]:
    r = run.runner
    if r is None:
        return []
    net = net_savings(run)
    sign = "-" if net < 0 else ""
    worse = " (waiting cost more than batching saved)" if net < 0 else ""
    return [
        f"| Runner | {r.minutes} min billed at ${r.rate.usd_per_minute:g}/min ({escape(r.rate.why)}): "
        f"${r.cost_usd:,.4f} |",
        f"| Net savings | **{sign}${abs(net):,.4f}**: savings less ${r.waiting_cost_usd:,.4f} for "
        f"{r.waited_minutes:,.2f} min waiting on the batch{worse} |",
    ]


def _max_tokens_row(ctx: RunContext) -> list[str]:
    if ctx.max_tokens is None:
        return []
    return [f"| Max tokens | {ctx.max_tokens:,} per request ({escape(ctx.max_tokens_why)}) |"]


def _routing(ctx: RunContext) -> list[str]:
    lines = [f"Routing: **{ctx.decision.mode}** by {escape(ctx.decision.rule)}: {escape(ctx.decision.reason)}."]
    up = ctx.upgrade
    if up is not None and up.model != ctx.requested_model:
        asked = f"{code(ctx.requested_model or '')}" + (
            f" at effort {ctx.requested_effort}" if ctx.requested_effort else ""
        )
        ran = f"{code(ctx.model)}" + (f" at effort {ctx.effort}" if ctx.effort else "")
        lines += [
            "",
            f"Upgrade: asked for {asked}, ran {ran}. The per-token price did not rise:",
            "",
            "| per million tokens | input | output |",
            "|---|---|---|",
            f"| {code(ctx.requested_model or '')} synchronously | ${up.sync_rate[0]:g} | ${up.sync_rate[1]:g} |",
            f"| {code(ctx.model)} in a batch | ${up.batch_rate[0]:g} | ${up.batch_rate[1]:g} |",
        ]
    elif up is not None:
        lines += ["", f"Upgrade: {code(ctx.model)} is already the most capable model at or below its sync price."]
    if ctx.notes:
        lines += ["", *[f"- {escape(n)}" for n in ctx.notes]]
    return lines


def plan_summary(ctx: RunContext, est: Estimate) -> str:
    """What a run would do, without running it."""
    effort = f" at effort {ctx.effort}" if ctx.effort else ""
    mode_cost = est.for_mode(ctx.decision.mode)
    lines = [
        f"## batch-arbiter plan: {escape(ctx.workload)}",
        "",
        "| | |",
        "|---|---|",
        f"| Mode | **{ctx.decision.mode}** |",
        f"| Provider | {ctx.provider} |",
        f"| Model | {code(ctx.model)}{effort} |",
        *_max_tokens_row(ctx),
        f"| Input tokens | {est.input_tokens:,} ({escape(est.method)}) |",
        f"| Output tokens | up to {est.max_output_tokens:,} (every request using its max_tokens) |",
        f"| Estimated cost as a batch | ${est.batch_usd:,.4f} |",
        f"| Estimated cost synchronously | ${est.sync_usd:,.4f} |",
        f"| This run ({ctx.decision.mode}) | **${mode_cost:,.4f}** |",
        "",
        *_routing(ctx),
        "",
        "Nothing was submitted: plan calls only the provider's free model and token-counting endpoints.",
    ]
    return "\n".join(lines) + "\n"


def _failures(results_file: Path) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if not results_file.exists():
        return rows
    with results_file.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["status"] not in (Status.SUCCEEDED, Status.INCOMPLETE, Status.PENDING):
                rows.append((record["custom_id"], record["status"], record.get("error") or ""))
    return rows
