"""This run's line in the token-metrics log (`metrics-file`), in the layout `core.metrics` reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_arbiter.core.console import Console
from batch_arbiter.core.metrics import append, effective_tokens, run_url
from batch_arbiter.core.pricing import PriceTable
from batch_arbiter.providers.registry import info_for_model
from batch_arbiter.run.engine import RunResult
from batch_arbiter.run.report import RunContext

__all__ = ["log_run", "run_record"]


def run_record(
    ctx: RunContext,
    result: RunResult,
    *,
    prices: PriceTable,
    now: datetime,
    workflow: str | None,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """This run's token-metrics record: the origin's fields first, then the batch run's costs and savings."""
    t = result.totals
    u = t.usage
    return {
        "ts": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workflow": workflow or ctx.workload,
        "tier": "batch" if t.via.get("batch", 0) or result.mode == "pending" else "sync",
        "engine": _engine(ctx),
        "model": ctx.model,
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_creation_tokens": u.cache_creation_tokens,
        "output_tokens": u.output_tokens,
        "et": effective_tokens(ctx.model, u, prices, now.date()),
        "run_id": env.get("GITHUB_RUN_ID", ""),
        "context": run_url(env),
        "workload": ctx.workload,
        "provider": ctx.provider,
        "mode": result.mode,
        "requests": t.requests,
        "cost_usd": round(t.cost_usd, 8),
        "sync_cost_usd": round(t.sync_cost_usd, 8),
        "savings_usd": round(t.savings_usd, 8),
        "cache_creation_1h_tokens": u.cache_creation_1h_tokens,
        **_runner_fields(result),
    }


def _runner_fields(result: RunResult) -> dict[str, Any]:
    """The runner's minutes and cost, and the savings net of the minutes spent waiting on the batch."""
    runner = result.runner
    if runner is None:
        return {}
    return {
        "runner_minutes": runner.minutes,
        "runner_cost_usd": round(runner.cost_usd, 8),
        "waiting_cost_usd": round(runner.waiting_cost_usd, 8),
        "waited_minutes": round(runner.waited_minutes, 4),
        "net_savings_usd": round(result.totals.savings_usd - runner.waiting_cost_usd, 8),
    }


def log_run(
    path: Path | None,
    ctx: RunContext,
    result: RunResult,
    runner: Console,
    prices: PriceTable,
    env: Mapping[str, str] | None = None,
) -> None:
    """Append this run's record to `metrics-file`. Never fails the run: problems become a warning."""
    if path is None:
        return
    nothing = not result.totals.cost_usd and not result.totals.usage.output_tokens
    # A run that left its batch pending spent nothing on tokens, but its runner minutes count when billed.
    if result.mode == "pending" and nothing and not (result.runner and result.runner.cost_usd):
        runner.log(f"metrics: nothing spent yet (batch left pending); the run that collects it logs to {path.name}")
        return
    try:
        record = run_record(
            ctx,
            result,
            prices=prices,
            now=datetime.now(UTC),
            workflow=runner.workflow,
            env=os.environ if env is None else env,
        )
        append(path, record)
    except Exception as exc:
        runner.warning(f"metrics-file: could not append to {path}: {exc}; the run itself is unaffected")
        return
    runner.log(f"metrics: appended this run's record to {path}")


def _engine(ctx: RunContext) -> str:
    vendor = info_for_model(ctx.model)
    return vendor.engine if vendor else ctx.provider
