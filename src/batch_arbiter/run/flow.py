"""A run from validated inputs to its outputs: budget guard, state adoption, engine, report, metrics."""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_arbiter.core.console import Console
from batch_arbiter.core.records import Outcome, Status, Via
from batch_arbiter.core.runner_cost import RunnerCost, billed_minutes, event_payload, runner_rate
from batch_arbiter.core.settings import Settings, collect_by_time, poll_seconds
from batch_arbiter.errors import Cancelled, InputError
from batch_arbiter.run.budget import estimate
from batch_arbiter.run.carry import carry_settled, set_aside
from batch_arbiter.run.engine import Engine, RunResult, StateNotSaved
from batch_arbiter.run.prepare import Prepared, prepare
from batch_arbiter.run.report import RunContext, outputs, plan_summary, summary
from batch_arbiter.run.results import RESULTS_FILE, RESULTS_JSON_FILE, ResultWriter, write_results_json
from batch_arbiter.run.spend_log import log_run
from batch_arbiter.run.state import STATE_FILE, RunState

__all__ = ["EXIT_BAD_INPUT", "EXIT_INCOMPLETE", "EXIT_OK", "execute", "plan", "run"]

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2


def execute(settings: Settings, console: Console, runner: Callable[[Prepared, Console], int] | None = None) -> int:
    """Validate everything, then run (or plan). Nothing is sent to a provider before validation passes.
    `runner` runs the validated plan (`run` when None; multi-turn runs bring their own)."""
    prepared = None
    try:
        # One boundary around everything before the first paid call: whatever goes wrong here is
        # reported as bad input, and nothing has been sent.
        prepared = prepare(settings, console)
        if settings.mode != "plan" and _over_budget(prepared, console):
            prepared.provider.close()
            return EXIT_BAD_INPUT
    except InputError as exc:
        console.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    except Cancelled as exc:
        if prepared is not None:
            prepared.provider.close()
        console.warning(f"cancelled by {exc} while checking the inputs; nothing was sent")
        return EXIT_INCOMPLETE
    except Exception as exc:
        if prepared is not None:
            prepared.provider.close()
        console.error(f"unexpected {type(exc).__name__}: {exc}; nothing was sent", title="batch-arbiter: bad input")
        with console.group("Traceback"):
            console.log(traceback.format_exc())
        return EXIT_BAD_INPUT
    try:
        if settings.mode == "plan":
            return plan(prepared, console)
        return (runner or run)(prepared, console)
    except Exception as exc:
        # Still an annotation, never a bare traceback: the text goes through the log's redaction, and
        # state.json (written before each create is sent) lets a later run collect it.
        console.error(f"unexpected {type(exc).__name__}: {exc}", title="batch-arbiter: internal error")
        with console.group("Traceback"):
            console.log(traceback.format_exc())
        return EXIT_INCOMPLETE
    finally:
        prepared.provider.close()


def plan(p: Prepared, console: Console) -> int:
    """What a run would do and cost, with nothing submitted."""
    est = estimate(p.requests, p.provider, p.spec, p.prices, p.today)
    console.set_outputs(
        {
            "mode": p.decision.mode,
            "status": "planned",
            "model": p.spec.model,
            "cost-usd": f"{est.for_mode(p.decision.mode):.6f}",
            "sync-cost-usd": f"{est.sync_usd:.6f}",
            "savings-usd": f"{est.sync_usd - est.for_mode(p.decision.mode):.6f}",
        }
    )
    console.write_summary(plan_summary(context(p), est))
    return EXIT_OK


def run(p: Prepared, console: Console) -> int:
    """Submit (or collect), wait, fall back, and report; returns the step's exit code."""
    settings = p.settings
    p.out_dir.mkdir(parents=True, exist_ok=True)
    state_path = p.out_dir / STATE_FILE
    batch_ids = [b for b in re.split(r"[,\s]+", settings.batch_id or "") if b]
    previous = RunState.read(state_path)
    now = datetime.now(UTC)
    on_timeout = settings.on_timeout
    if settings.mode == "collect" and not batch_ids:
        done = _nothing_to_collect(p, console, previous)
        if done is not None:
            return done
    adopted = not batch_ids and previous is not None and previous.collectable
    if adopted and previous is not None and previous.provider == settings.provider:
        # A re-run of the same step: collect what was already paid for instead of submitting again.
        batch_ids = list(previous.batch_ids)
        if previous.creating is not None:
            batch_ids += _created_before_the_stop(p, console, previous.creating)
        if batch_ids:
            shown = ",".join(batch_ids)
            console.notice(f"found {STATE_FILE} for batch {shown}; collecting it instead of submitting again")
        until = _collect_by(previous)
        left_pending = previous.status == "pending" or settings.mode == "collect"
        if left_pending and until is not None and now < until:
            # Left with the provider on purpose: until collect-by, a collect only collects; what is still
            # running stays there (no cancel, no fallback) for the next collect.
            on_timeout = "leave"
            console.notice(
                f"collect-by {until.isoformat(timespec='seconds')}: what the batch has not finished stays pending "
                f"until then; after it, on-timeout ({settings.on_timeout}) applies"
            )
    if adopted and previous is not None and previous.collect_by:
        collect_by = previous.collect_by
    else:
        collect_by = collect_by_time(settings.collect_by, now).astimezone(UTC).isoformat(timespec="seconds")
    deadline_wall = datetime.now(UTC) + timedelta(minutes=p.timeout_minutes)
    state = RunState(
        state_path,
        settings.provider,
        p.spec.model,
        p.workload,
        deadline_wall.isoformat("T", "seconds"),
        run=console.run_key,
        collect_by=collect_by,
    )
    same_batches = previous is not None and bool(batch_ids) and set(batch_ids) <= set(previous.batch_ids)
    earlier = set_aside(p.out_dir / RESULTS_FILE) if same_batches else None
    writer = ResultWriter(p.out_dir, p.prices, p.spec.model, p.today, redact=console.redact)
    kept, unreadable = carry_settled(earlier, writer) if earlier else (0, 0)
    engine = Engine(
        p.provider,
        p.spec,
        writer,
        state,
        deadline=p.deadline,
        poll_interval=poll_seconds(settings),
        on_timeout=on_timeout,
        concurrency=settings.max_concurrency,
        log=console.log,
        warn=console.warning,
        events=p.events,
    )
    if kept:
        engine.note(f"kept {kept} results an earlier run of these batches settled; only the rest was collected")
    if unreadable:
        console.notice(
            f"skipped {unreadable} unreadable lines of the earlier {RESULTS_FILE} (a run stopped mid-write); "
            "their requests are collected again from the batch"
        )
    ctx = context(p)
    console.log(f"{p.workload}: {len(p.requests)} requests, {p.decision.mode} on {p.spec.model} ({p.decision.reason})")
    try:
        if p.decision.mode == "sync" and not batch_ids:
            result = engine.run_sync(p.requests)
        else:
            result = engine.run_batch(p.requests, batch_ids)
    except Cancelled as exc:
        return _cancelled(p, console, exc, state, writer, engine, ctx)
    except StateNotSaved as exc:
        writer.close()
        console.set_outputs({"status": "failed", "batch-id": exc.batch_ids})
        console.error(str(exc), title="batch-arbiter: state not saved")
        return EXIT_INCOMPLETE
    writer.close()
    if ctx.results_json is not None:
        write_results_json(p.out_dir, p.requests)
    result.runner = runner_cost(p, result.waited_seconds)
    console.set_outputs(outputs(ctx, result))
    console.write_summary(summary(ctx, result))
    # The metrics log counts spend once: results carried over from an earlier run were logged by it.
    spent = replace(result, totals=result.totals.minus(writer.carried)) if kept else result
    log_run(p.metrics_path, ctx, spent, console, p.prices)
    warn_if_waiting_cost_more(console, result)
    if result.totals.incomplete:
        console.warning(
            f"{result.totals.incomplete} of {result.totals.requests} answers were cut short at max_tokens "
            f"(status incomplete, text kept in {writer.path.relative_to(p.workspace)}); raise max-tokens to let "
            "them finish",
            title="batch-arbiter: incomplete answers",
        )
    if result.fatal:
        console.error(result.fatal, title="batch-arbiter: refused")
        return EXIT_INCOMPLETE
    if result.status in ("succeeded", "pending") or (
        result.status == "partial" and not result.totals.failed and not result.totals.statuses[Status.PENDING]
    ):
        # Cut-short answers still have a result: the warning says so, and the step does not fail.
        return EXIT_OK
    pending = result.totals.statuses[Status.PENDING]
    left = f"; {pending} are still with the provider: collect them with `batch-id: {result.batch_id}`"
    left = left if pending else ""
    console.error(
        f"{result.totals.failed} of {result.totals.requests} requests ended without a result{left}; "
        f"see {writer.path.relative_to(p.workspace)}",
        title="batch-arbiter: incomplete",
    )
    return EXIT_INCOMPLETE


def _collect_by(state: RunState) -> datetime | None:
    if not state.collect_by:
        return None
    try:
        moment = datetime.fromisoformat(state.collect_by)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _nothing_to_collect(p: Prepared, console: Console, previous: RunState | None) -> int | None:
    """`mode: collect` never submits. Without a state to collect that is bad input; with a state a run
    already finished it is a no-op, with a notice, and no second report of the same spend."""
    shown = (p.out_dir / STATE_FILE).relative_to(p.workspace).as_posix()
    if previous is not None and previous.finished:
        console.notice(
            f"{shown}: batch {previous.batch_id} was already collected ({previous.status}); nothing to do, "
            "nothing reported again"
        )
        console.set_outputs(
            {
                "status": previous.status.removeprefix("done:"),
                "batch-id": previous.batch_id or "",
                "results-dir": p.out_dir.relative_to(p.workspace).as_posix(),
                "results-file": (p.out_dir / RESULTS_FILE).relative_to(p.workspace).as_posix(),
            }
        )
        return EXIT_OK
    if previous is None or not previous.collectable:
        console.error(
            f"mode collect: {shown} names no batch to collect ("
            + ("missing or unreadable" if previous is None else f"status {previous.status}")
            + "); restore the output directory of the submitting run first. Nothing was sent.",
            title="batch-arbiter: bad input",
        )
        return EXIT_BAD_INPUT
    return None


def runner_cost(p: Prepared, waited_seconds: float) -> RunnerCost:
    """The step's runner minutes so far and their price, from the runner's environment and the event
    payload's repository visibility (or the `runner-cost-per-minute` input)."""
    rate = runner_rate(os.environ, event_payload(os.environ), p.settings.runner_cost_per_minute, p.today)
    return RunnerCost(rate, billed_minutes(time.monotonic() - p.started), waited_seconds / 60)


def warn_if_waiting_cost_more(console: Console, result: RunResult) -> None:
    """A batch that saved less than the runner cost while waiting on it: say so, and what to do instead."""
    runner = result.runner
    # Only a batch that answered something has savings to weigh its waiting against.
    if runner is None or not runner.waiting_cost_usd or result.fatal or not result.totals.via[Via.BATCH]:
        return
    net = result.totals.savings_usd - runner.waiting_cost_usd
    if net >= 0:
        return
    console.warning(
        f"waiting {runner.waited_minutes:.2f} min on the batch cost ${runner.waiting_cost_usd:.4f} on the runner, "
        f"more than batching saved (${result.totals.savings_usd:.4f}): net -${-net:.4f}. Submit and collect later "
        "instead (timeout-minutes: 0 with on-timeout: leave, then a later run collects; see "
        "examples/batch-submit.yml and examples/batch-collect.yml), so no runner waits",
        title="batch-arbiter: waiting cost more than batching saved",
    )


def _created_before_the_stop(p: Prepared, console: Console, creating: dict[str, Any]) -> list[str]:
    """The batch an earlier run created just before it was stopped, before it could save the batch's id."""
    since = datetime.fromisoformat(creating["since"])
    found = p.provider.find_submitted(creating["token"], since, creating["size"])
    if found is None:
        console.notice(f"an earlier run was stopped while creating a batch; {p.provider.name} shows none it made")
        return []
    console.notice(
        f"an earlier run was stopped right after creating batch {found}; collecting it, not creating another"
    )
    return [found]


def _over_budget(p: Prepared, console: Console) -> bool:
    """`budget-usd` given and the estimate above it: reported, and the run must not start."""
    if p.settings.budget_usd is None:
        return False
    est = estimate(p.requests, p.provider, p.spec, p.prices, p.today)
    cost = est.for_mode(p.decision.mode)
    if cost <= p.settings.budget_usd:
        return False
    console.error(
        f"estimated cost ${cost:.4f} ({p.decision.mode}, input {est.method}, every request using its "
        f"max_tokens) is over budget-usd ${p.settings.budget_usd:.4f}; nothing was submitted",
        title="batch-arbiter: over budget",
    )
    return True


def _cancelled(
    p: Prepared,
    console: Console,
    exc: Cancelled,
    state: RunState,
    writer: ResultWriter,
    engine: Engine[ResultWriter],
    ctx: RunContext,
) -> int:
    """Every request still gets a line: pending in the batch, or canceled if it never left here."""
    if state.batch_id:
        status, via, note = Status.PENDING, Via.BATCH, "left in the batch; collect later"
    elif state.creating is not None:
        # Stopped while a create was in flight: the batch may exist, and a re-run looks for it first.
        status, via, note = Status.PENDING, Via.BATCH, "stopped while its batch was being created; re-run to collect"
    else:
        status, via, note = Status.CANCELED, Via.SYNC, "the run was cancelled before this request ran"
    for request in p.requests:
        if request.custom_id not in writer.written:
            writer.write(Outcome(request.custom_id, status, error=note), request.source, via)
    writer.close()
    if ctx.results_json is not None:
        write_results_json(p.out_dir, p.requests)
    where = (
        f" Batch {state.batch_id} stays with the provider; collect it with `batch-id: {state.batch_id}`"
        f" or by re-running with {(p.out_dir / STATE_FILE).relative_to(p.workspace)} present."
        if state.batch_id
        else ""
    )
    console.warning(f"cancelled by {exc}; results so far are in {writer.path.relative_to(p.workspace)}.{where}")
    console.set_outputs(
        {
            "status": "pending" if status is Status.PENDING else "failed",
            "batch-id": state.batch_id or "",
            "results-file": writer.path.relative_to(p.workspace).as_posix(),
            "results-json": ctx.shown(ctx.results_json) if ctx.results_json is not None else "",
        }
    )
    # What the run spent before it was stopped (sync calls, results already collected) is logged too.
    stopped = RunResult(
        "pending" if status is Status.PENDING else "sync",
        "pending" if status is Status.PENDING else "failed",
        list(state.batch_ids),
        writer.totals.minus(writer.carried),
        engine.events,
    )
    log_run(p.metrics_path, ctx, stopped, console, p.prices)
    return EXIT_INCOMPLETE


def context(p: Prepared) -> RunContext:
    """What the report needs to know of the run's inputs and decisions."""
    return RunContext(
        workload=p.workload,
        provider=p.settings.provider,
        model=p.spec.model,
        effort=p.spec.effort,
        decision=p.decision,
        results_dir=p.out_dir,
        results_file=p.out_dir / RESULTS_FILE,
        requested_model=p.requested_model,
        requested_effort=p.requested_effort,
        upgrade=p.upgrade,
        notes=tuple(p.notes),
        workspace=p.workspace,
        results_json=p.out_dir / RESULTS_JSON_FILE if any(r.response_schema is not None for r in p.requests) else None,
        max_tokens=p.spec.max_tokens,
        max_tokens_why=p.max_tokens_why,
    )
