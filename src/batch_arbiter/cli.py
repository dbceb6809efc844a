"""`batch-arbiter`: the action's entrypoint (`run`, the default), plus `plan`, `emulate` and `demo`."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from batch_arbiter.settings import BadInput, Settings, input_name, load_settings

if TYPE_CHECKING:
    from batch_arbiter.policy import Decision, Upgrade
    from batch_arbiter.pricing import PriceTable
    from batch_arbiter.providers import Provider, RunSpec
    from batch_arbiter.records import PromptRequest
    from batch_arbiter.report import RunContext
    from batch_arbiter.results import ResultWriter
    from batch_arbiter.runner import Runner

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_MODELS = {"anthropic": "claude-sonnet-5-5", "gemini": "gemini-3.8-flash"}
API_KEY_ENV = {"anthropic": ("ANTHROPIC_API_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
SUPPORTED_PROVIDERS = ("anthropic", "gemini")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and not args[0].startswith("-") else "run"
    rest = args[1:] if args and not args[0].startswith("-") else args
    if command == "run":
        return run_command(rest)
    if command == "plan":
        return run_command(rest, mode="plan")
    if command == "post":
        from batch_arbiter.post import main as post

        return post(rest)
    if command == "emulate":
        from batch_arbiter.emulator.__main__ import main as emulate

        return emulate(rest)
    if command == "demo":
        from batch_arbiter.demo import main as demo

        return demo(rest)
    if command == "audit":
        from batch_arbiter.audit import main as audit

        return audit(rest)
    if command == "report":
        from batch_arbiter.spend import main as report

        return report(rest)
    print(f"unknown command {command!r}; use run, plan, audit, report, emulate or demo", file=sys.stderr)
    return EXIT_BAD_INPUT


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"batch-arbiter {prog}",
        description="Every flag mirrors an input of action.yml; flags win over INPUT_* variables.",
    )
    for name in Settings.model_fields:
        flag = "--" + input_name(name)
        if name == "prompt_files":
            parser.add_argument(flag, nargs="+", metavar="PATH_OR_GLOB")
        else:
            parser.add_argument(flag, dest=name, metavar=input_name(name).upper().replace("-", "_"))
    return parser


class Cancelled(BaseException):
    """The runner is cancelling the step (SIGINT, then SIGTERM)."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)


def run_command(argv: Sequence[str], mode: str | None = None) -> int:
    from batch_arbiter.runner import Runner

    runner = Runner.from_env()
    flags = vars(_parser(mode or "run").parse_args(argv))
    if flags.get("prompt_files"):
        flags["prompt_files"] = "\n".join(flags["prompt_files"])
    if mode:
        flags["mode"] = mode
    try:
        settings = load_settings(**flags)
    except BadInput as exc:
        runner.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    # Python as PID 1 ignores SIGTERM unless told otherwise; both signals end the run cleanly.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    from batch_arbiter.selftest import bundled_emulator

    # Only the process entrypoint reads the switch; in-process callers pass their own base URL.
    with bundled_emulator(settings, runner) as settings:
        return execute(settings, runner)


@dataclass
class Prepared:
    """Everything a run needs, validated. Built before any paid call."""

    settings: Settings
    workspace: Path
    out_dir: Path
    requests: list[PromptRequest]
    provider: Provider
    spec: RunSpec
    decision: Decision
    workload: str
    requested_model: str
    requested_effort: str | None
    prices: PriceTable
    today: date
    timeout_minutes: float
    upgrade: Upgrade | None = None
    notes: list[str] = field(default_factory=list)


def execute(settings: Settings, runner: Runner) -> int:
    """Validate everything, then run (or plan). Nothing is sent to a provider before validation passes."""
    if settings.mode == "audit":
        from batch_arbiter.audit import run_step

        return run_step(settings, runner)
    try:
        prepared = prepare(settings, runner)
    except BadInput as exc:
        runner.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    try:
        if settings.mode == "plan":
            return plan(prepared, runner)
        return run(prepared, runner)
    except Exception as exc:
        # Still an annotation, never a bare traceback: the text goes through the log's redaction, and
        # state.json (written as soon as a batch exists) lets a later run collect it.
        runner.error(f"unexpected {type(exc).__name__}: {exc}", title="batch-arbiter: internal error")
        with runner.group("Traceback"):
            runner.log(traceback.format_exc())
        return EXIT_INCOMPLETE
    finally:
        prepared.provider.close()


def prepare(settings: Settings, runner: Runner) -> Prepared:
    from batch_arbiter import prompts
    from batch_arbiter.catalog import clamp_effort, highest_effort, offline_caps
    from batch_arbiter.policy import PolicyError, decide, load_policy, upgrade_model
    from batch_arbiter.pricing import PriceTable, PricingError, provider_of
    from batch_arbiter.providers import ProviderConfig, ProviderError, RunSpec, make_provider

    workspace = runner.workspace.resolve()
    if settings.provider not in SUPPORTED_PROVIDERS:
        raise BadInput(f"input `provider`: {settings.provider} is not supported; use `anthropic` or `gemini`")
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    api_key = api_key or next((os.environ[v] for v in API_KEY_ENV[settings.provider] if os.environ.get(v)), None)
    if not api_key:
        names = " or ".join(API_KEY_ENV[settings.provider])
        raise BadInput(f"no API key: set the `api-key` input (from a secret) or {names}")
    runner.mask(api_key)

    try:
        prices = PriceTable.load(_inside(workspace, settings.pricing_file, "pricing-file"))
        policy = load_policy(_inside(workspace, settings.policy_file, "policy-file"))
    except (PricingError, PolicyError) as exc:
        raise BadInput(str(exc)) from None
    workload = settings.workload or runner.workflow or "default"
    decision = decide(workload, settings.mode, runner.event_name, settings.upgrade, policy)
    requested_model = settings.model or decision.model or DEFAULT_MODELS[settings.provider]
    if provider_of(requested_model) != settings.provider or not prices.knows(requested_model):
        known = ", ".join(prices.known_models(settings.provider))
        raise BadInput(f"input `model`: unknown {settings.provider} model {requested_model!r}; known: {known}")

    out_dir = _inside(workspace, settings.output_dir, "output-dir") or workspace / "batch-results"
    _inside(workspace, settings.metrics_file, "metrics-file")
    system = None
    if settings.system_prompt_file:
        system_path = _inside(workspace, settings.system_prompt_file, "system-prompt-file")
        if system_path is None or not system_path.is_file():
            raise BadInput(f"system prompt file not found: {settings.system_prompt_file}")
        system = system_path.read_text(encoding="utf-8")
    try:
        requests = prompts.load_requests(prompts.expand(settings.prompt_files, workspace), workspace, system)
    except prompts.PromptError as exc:
        raise BadInput(str(exc)) from None

    today = datetime.now(UTC).date()
    model, upgrade, notes = requested_model, None, []
    if decision.mode == "batch" and decision.upgrade and not settings.batch_id:
        upgrade = upgrade_model(settings.provider, requested_model, prices, today)
        model = upgrade.model

    timeout = settings.timeout_minutes
    if decision.max_wait_minutes is not None and decision.max_wait_minutes < timeout:
        timeout = decision.max_wait_minutes
        notes.append(f"the policy caps the batch wait at {timeout:g} minutes")
    provider = make_provider(settings.provider, ProviderConfig(api_key=api_key, base_url=settings.base_url))
    try:
        caps = provider.model_caps(model)
    except ProviderError as exc:
        provider.close()
        raise BadInput(f"input `model`: {exc}") from None
    caps = caps or offline_caps(model)
    efforts = caps.efforts if caps else ()
    requested_effort = settings.effort or decision.effort
    if upgrade is not None:
        effort = highest_effort(efforts)
    elif requested_effort:
        effort = clamp_effort(requested_effort, efforts)
        if effort != requested_effort:
            notes.append(
                f"{model} does not take effort {requested_effort}; "
                + (f"using {effort}, the nearest level it supports" if effort else "sent without an effort")
            )
    else:
        effort = None
    for note in notes:
        runner.warning(note)
    return Prepared(
        settings=settings,
        workspace=workspace,
        out_dir=out_dir,
        requests=requests,
        provider=provider,
        spec=RunSpec(model=model, effort=effort, max_tokens=settings.max_tokens),
        decision=decision,
        workload=workload,
        requested_model=requested_model,
        requested_effort=requested_effort,
        prices=prices,
        today=today,
        timeout_minutes=timeout,
        upgrade=upgrade,
        notes=notes,
    )


def plan(p: Prepared, runner: Runner) -> int:
    from batch_arbiter.budget import estimate
    from batch_arbiter.report import plan_summary

    est = estimate(p.requests, p.provider, p.spec, p.prices, p.today)
    runner.set_outputs(
        {
            "mode": p.decision.mode,
            "status": "planned",
            "model": p.spec.model,
            "cost-usd": f"{est.for_mode(p.decision.mode):.6f}",
            "sync-cost-usd": f"{est.sync_usd:.6f}",
            "savings-usd": f"{est.sync_usd - est.for_mode(p.decision.mode):.6f}",
        }
    )
    runner.write_summary(plan_summary(_context(p), est))
    return EXIT_OK


def run(p: Prepared, runner: Runner) -> int:
    from batch_arbiter.budget import estimate
    from batch_arbiter.engine import Engine, RunResult
    from batch_arbiter.metrics import log_run
    from batch_arbiter.records import Outcome, Status, Via
    from batch_arbiter.report import outputs, summary
    from batch_arbiter.results import RESULTS_FILE, ResultWriter
    from batch_arbiter.state import STATE_FILE, RunState

    settings = p.settings
    if settings.budget_usd is not None:
        est = estimate(p.requests, p.provider, p.spec, p.prices, p.today)
        cost = est.for_mode(p.decision.mode)
        if cost > settings.budget_usd:
            runner.error(
                f"estimated cost ${cost:.4f} ({p.decision.mode}, input {est.method}, every request using its "
                f"max_tokens) is over budget-usd ${settings.budget_usd:.4f}; nothing was submitted",
                title="batch-arbiter: over budget",
            )
            return EXIT_BAD_INPUT

    p.out_dir.mkdir(parents=True, exist_ok=True)
    state_path = p.out_dir / STATE_FILE
    batch_ids = [b for b in re.split(r"[,\s]+", settings.batch_id or "") if b]
    previous = RunState.read(state_path)
    if not batch_ids and previous is not None and previous.collectable and previous.provider == settings.provider:
        # A re-run of the same step: collect what was already paid for instead of submitting again.
        batch_ids = previous.batch_ids
        runner.notice(f"found {STATE_FILE} for batch {previous.batch_id}; collecting it instead of submitting again")
    deadline_wall = datetime.now(UTC) + timedelta(minutes=p.timeout_minutes)
    state = RunState(
        state_path,
        settings.provider,
        p.spec.model,
        p.workload,
        deadline_wall.isoformat("T", "seconds"),
        run=runner.run_key,
    )
    same_batches = previous is not None and bool(batch_ids) and set(batch_ids) <= set(previous.batch_ids)
    earlier = _set_aside(p.out_dir / RESULTS_FILE) if same_batches else None
    writer = ResultWriter(p.out_dir, p.prices, p.spec.model, p.today, redact=runner.redact)
    kept = _carry_settled(earlier, writer) if earlier else 0
    engine = Engine(
        p.provider,
        p.spec,
        writer,
        state,
        deadline=time.monotonic() + p.timeout_minutes * 60,
        poll_interval=settings.poll_interval,
        on_timeout=settings.on_timeout,
        concurrency=settings.max_concurrency,
        log=runner.log,
        warn=runner.warning,
    )
    if kept:
        engine.note(f"kept {kept} results an earlier run of these batches settled; only the rest was collected")
    ctx = _context(p)
    runner.log(f"{p.workload}: {len(p.requests)} requests, {p.decision.mode} on {p.spec.model} ({p.decision.reason})")
    try:
        if p.decision.mode == "sync" and not batch_ids:
            result = engine.run_sync(p.requests)
        else:
            result = engine.run_batch(p.requests, batch_ids)
    except Cancelled as exc:
        # Every request still gets a line: pending in the batch, or canceled if it never left here.
        status, via, note = (
            (Status.PENDING, Via.BATCH, "left in the batch; collect later")
            if state.batch_id
            else (Status.CANCELED, Via.SYNC, "the run was cancelled before this request ran")
        )
        for request in p.requests:
            if request.custom_id not in writer.written:
                writer.write(Outcome(request.custom_id, status, error=note), request.source, via)
        writer.close()
        where = (
            f" Batch {state.batch_id} stays with the provider; collect it with `batch-id: {state.batch_id}`"
            f" or by re-running with {state_path.relative_to(p.workspace)} present."
            if state.batch_id
            else ""
        )
        runner.warning(f"cancelled by {exc}; results so far are in {writer.path.relative_to(p.workspace)}.{where}")
        runner.set_outputs(
            {
                "status": "pending" if state.batch_id else "failed",
                "batch-id": state.batch_id or "",
                "results-file": writer.path.relative_to(p.workspace).as_posix(),
            }
        )
        # What the run spent before it was stopped (sync calls, results already collected) is logged too.
        stopped = RunResult(
            "pending" if state.batch_id else "sync",
            "pending" if state.batch_id else "failed",
            list(state.batch_ids),
            writer.totals.minus(writer.carried),
            engine.events,
        )
        log_run(_inside(p.workspace, settings.metrics_file, "metrics-file"), ctx, stopped, runner, p.prices)
        return EXIT_INCOMPLETE
    writer.close()
    runner.set_outputs(outputs(ctx, result))
    runner.write_summary(summary(ctx, result))
    # The metrics log counts spend once: results carried over from an earlier run were logged by it.
    spent = replace(result, totals=result.totals.minus(writer.carried)) if kept else result
    log_run(_inside(p.workspace, settings.metrics_file, "metrics-file"), ctx, spent, runner, p.prices)
    if result.status in ("succeeded", "pending"):
        return EXIT_OK
    pending = result.totals.statuses[Status.PENDING]
    left = f"; {pending} are still with the provider: collect them with `batch-id: {result.batch_id}`"
    left = left if pending else ""
    runner.error(
        f"{result.totals.failed} of {result.totals.requests} requests ended without a result{left}; "
        f"see {writer.path.relative_to(p.workspace)}",
        title="batch-arbiter: incomplete",
    )
    return EXIT_INCOMPLETE


def _set_aside(results: Path) -> Path | None:
    """Move an earlier run's results of the same batches out of the way of the new results file."""
    if not results.exists():
        return None
    aside = results.with_name("results.earlier.jsonl")
    os.replace(results, aside)
    return aside


def _carry_settled(earlier: Path, writer: ResultWriter) -> int:
    """Keep what an earlier run of the same batches settled (answers, sync reruns): those requests are
    not run again. Its pending lines are what this run collects."""
    from batch_arbiter.records import Status

    kept = 0
    with earlier.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("status") != Status.PENDING and record["custom_id"] not in writer.written:
                writer.carry(record)
                kept += 1
    earlier.unlink()
    return kept


def _context(p: Prepared) -> RunContext:
    from batch_arbiter.report import RunContext
    from batch_arbiter.results import RESULTS_FILE

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
    )


def _inside(workspace: Path, value: str | None, name: str) -> Path | None:
    """A path input, resolved inside the workspace (symlinks included) or refused."""
    if not value:
        return None
    path = (workspace / value).resolve()
    if not path.is_relative_to(workspace):
        raise BadInput(f"input `{name}`: {value!r} is outside the workspace", input=name)
    return path
