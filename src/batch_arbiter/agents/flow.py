"""A multi-turn run from validated inputs to its outputs: conversations through batch rounds, tools run
between them, results and the summary's table of rounds. A run whose requests have no tools is the
single-turn run (run/flow.py), unchanged."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime, timedelta

from batch_arbiter.agents.results import ConversationResults
from batch_arbiter.agents.rounds import RoundReport, Rounds, RoundsResult, RunIdentity
from batch_arbiter.agents.store import ACTIVE, Conversation, Store
from batch_arbiter.agents.workspace import Workspace
from batch_arbiter.core.console import Console
from batch_arbiter.core.conversation import CallResult, ConversationRequest, ToolCall
from batch_arbiter.core.records import Status
from batch_arbiter.core.settings import Settings, poll_seconds
from batch_arbiter.errors import Cancelled
from batch_arbiter.markdown import code
from batch_arbiter.run import flow
from batch_arbiter.run.engine import RunResult, StateNotSaved
from batch_arbiter.run.prepare import Prepared
from batch_arbiter.run.report import outputs, summary
from batch_arbiter.run.results import Totals, write_results_json
from batch_arbiter.run.spend_log import log_run
from batch_arbiter.run.state import STATE_FILE, RunState

__all__ = ["execute", "run"]


def execute(settings: Settings, console: Console) -> int:
    """Validate everything, then run: through batch rounds when any request has tools."""
    return flow.execute(settings, console, runner=run)


def conversations(p: Prepared) -> list[ConversationRequest] | None:
    """The run's requests as conversations with their tools (each request's own, else the `tools` input,
    as prepare resolved them); None when no request has a tool."""
    if not any(r.tools for r in p.requests):
        return None
    return [
        ConversationRequest(
            r.custom_id,
            r.source,
            r.content,
            system=r.system,
            max_tokens=r.max_tokens,
            tools=r.tools,
            response_schema=r.response_schema,
        )
        for r in p.requests
    ]


def run(p: Prepared, console: Console) -> int:
    """Run the conversations round by round (or continue an earlier run's), then report."""
    requests = conversations(p)
    if requests is None:
        return flow.run(p, console)
    settings = p.settings
    p.out_dir.mkdir(parents=True, exist_ok=True)
    ids = sorted(r.custom_id for r in requests)
    identity = {
        "provider": settings.provider,
        "model": p.spec.model,
        "conversations": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
    }
    state_path = p.out_dir / STATE_FILE
    store = Store.load(p.out_dir, identity)
    batch_ids = [b for b in (settings.batch_id or "").replace(",", " ").split() if b]
    if store is not None and store.unfinished:
        console.notice(
            f"continuing {sum(c.status == ACTIVE for c in store.conversations.values())} conversations "
            f"from round {store.round} of an earlier run"
        )
        previous = RunState.read(state_path)
        if not batch_ids and previous is not None and previous.collectable and previous.provider == settings.provider:
            batch_ids = list(previous.batch_ids)
            if previous.creating is not None:
                batch_ids += flow._created_before_the_stop(p, console, previous.creating)
    else:
        store = Store(p.out_dir, identity)
        # Round files of an earlier, finished run would be read as this run's answers.
        shutil.rmtree(store.rounds_dir, ignore_errors=True)
        for request in requests:
            store.conversations[request.custom_id] = Conversation(request)
        store.save()
    deadline_wall = datetime.now(UTC) + timedelta(minutes=p.timeout_minutes)
    run_identity = RunIdentity(
        state_path,
        settings.provider,
        p.spec.model,
        p.workload,
        deadline_wall.isoformat("T", "seconds"),
        run=console.run_key,
        custom_ids=ids,
    )
    workspaces: dict[tuple[str, ...], Workspace] = {}

    def run_tool(request: ConversationRequest, call: ToolCall) -> CallResult:
        names = request.tools
        workspace = workspaces.get(names) or workspaces.setdefault(names, Workspace(p.workspace, names))
        result = workspace.call(call.name, dict(call.input))
        return CallResult(call.id, call.name, result.text, result.is_error)

    rounds = Rounds(
        p.provider,
        p.spec,
        store,
        run_tool,
        run_identity,
        deadline=p.deadline,
        poll_interval=poll_seconds(settings),
        max_turns=settings.max_turns,
        on_timeout=settings.on_timeout,
        concurrency=settings.max_concurrency,
        log=console.log,
        warn=console.warning,
        events=p.events,
    )
    writer = ConversationResults(p.out_dir, p.prices, p.spec.model, p.today, redact=console.redact)
    ctx = flow.context(p)
    console.log(
        f"{p.workload}: {len(requests)} conversations, {p.decision.mode} rounds on {p.spec.model} "
        f"(up to {settings.max_turns} turns each; {p.decision.reason})"
    )
    batch = p.decision.mode == "batch" or bool(batch_ids)
    try:
        result = rounds.run(batch=batch, batch_ids=batch_ids)
    except Cancelled as exc:
        totals = writer.write(store, pending_note="the run was cancelled; run again to continue")
        if ctx.results_json is not None:
            write_results_json(p.out_dir, p.requests)
        where = f" (batch {','.join(rounds.batch_ids[-1:])} stays with the provider)" if rounds.batch_ids else ""
        console.warning(
            f"cancelled by {exc}; every answered turn is kept in {store.path.name}{where}. "
            "Run the step again to continue the conversations."
        )
        console.set_outputs({"status": "pending", "results-file": ctx.shown(writer.path)})
        stopped = RunResult("pending", "pending", rounds.batch_ids, totals, rounds.events)
        log_run(p.metrics_path, ctx, stopped, console, p.prices)
        return flow.EXIT_INCOMPLETE
    except StateNotSaved as exc:
        writer.write(store)
        console.set_outputs({"status": "failed", "batch-id": exc.batch_ids})
        console.error(str(exc), title="batch-arbiter: state not saved")
        return flow.EXIT_INCOMPLETE
    note = None
    if result.status == "pending":
        note = "left for a later run (on-timeout: leave); run again, or with `batch-id`, to continue"
    totals = writer.write(store, pending_note=note)
    if ctx.results_json is not None:
        write_results_json(p.out_dir, p.requests)
    for model in sorted(writer.unpriced_fees):
        rounds.note(f"no server-tool fee is known for {model}: its tool use is priced by tokens only")
    waited = sum(r.waited_seconds for r in result.rounds)
    run_result = RunResult(
        result.mode, result.status, result.batch_ids, totals, result.events, result.fatal, waited_seconds=waited
    )
    # Every round's wait held the runner, so the net saving weighs all of them.
    run_result.runner = flow.runner_cost(p, waited)
    console.set_outputs(outputs(ctx, run_result))
    console.write_summary(summary(ctx, run_result) + rounds_table(result, totals))
    log_run(p.metrics_path, ctx, run_result, console, p.prices)
    flow.warn_if_waiting_cost_more(console, run_result)
    if result.fatal:
        console.error(result.fatal, title="batch-arbiter: refused")
        return flow.EXIT_INCOMPLETE
    failed = totals.statuses[Status.ERRORED] + totals.statuses[Status.EXPIRED] + totals.statuses[Status.CANCELED]
    if failed:
        console.error(
            f"{failed} of {totals.requests} conversations ended without an answer; see {ctx.shown(writer.path)}",
            title="batch-arbiter: incomplete",
        )
        return flow.EXIT_INCOMPLETE
    return flow.EXIT_OK


def rounds_table(result: RoundsResult, totals: Totals) -> str:
    """The summary's table of rounds, and the totals over them."""
    lines = [
        "",
        "### Rounds",
        "",
        "| round | conversations | via | batch | waited | tool calls |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_round_row(r) for r in result.rounds]
    calls = sum(r.tool_calls for r in result.rounds)
    lines += [
        "",
        f"{len(result.rounds)} rounds, {calls} tool calls; {totals.requests} conversations: "
        f"{totals.statuses[Status.SUCCEEDED]} answered, {totals.statuses[Status.INCOMPLETE]} cut off by "
        f"max-turns, {totals.statuses[Status.PENDING]} pending. A round lasts as long as its slowest request.",
    ]
    return "\n".join(lines) + "\n"


def _round_row(r: RoundReport) -> str:
    batch = ", ".join(code(b) for b in r.batch_ids) or "-"
    return f"| {r.number} | {r.conversations} | {r.via} | {batch} | {r.waited_seconds:.1f} s | {r.tool_calls} |"
