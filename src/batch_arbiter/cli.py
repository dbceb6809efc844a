"""`batch-arbiter`: the action's entrypoint (`run`, the default), plus `emulate` and `demo`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from batch_arbiter.settings import BadInput, Settings, input_name, load_settings

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_MODELS = {"anthropic": "claude-sonnet-5-5", "gemini": "gemini-3.8-flash"}
API_KEY_ENV = {"anthropic": ("ANTHROPIC_API_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and not args[0].startswith("-") else "run"
    rest = args[1:] if args and not args[0].startswith("-") else args
    if command == "run":
        return run_command(rest)
    if command == "emulate":
        from batch_arbiter.emulator.__main__ import main as emulate

        return emulate(rest)
    if command == "demo":
        from batch_arbiter.demo import main as demo

        return demo(rest)
    print(f"unknown command {command!r}; use run, emulate or demo", file=sys.stderr)
    return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-arbiter run",
        description="Run prompt files as one provider batch. Every flag mirrors an input of action.yml; "
        "flags win over INPUT_* variables.",
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + input_name(name)
        if name == "prompt_files":
            parser.add_argument(flag, nargs="+", metavar="PATH_OR_GLOB", help=field.description)
        else:
            parser.add_argument(flag, dest=name, metavar=input_name(name).upper().replace("-", "_"))
    return parser


class Cancelled(BaseException):
    """The runner is cancelling the step (SIGINT, then SIGTERM)."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)


def run_command(argv: Sequence[str]) -> int:
    from batch_arbiter.runner import Runner

    runner = Runner.from_env()
    flags = vars(_parser().parse_args(argv))
    if flags.get("prompt_files"):
        flags["prompt_files"] = "\n".join(flags["prompt_files"])
    try:
        settings = load_settings(**flags)
    except BadInput as exc:
        runner.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    # Python as PID 1 ignores SIGTERM unless told otherwise; both signals end the run cleanly.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return execute(settings, runner)


def execute(settings: Settings, runner: Any) -> int:
    """Validate everything, then run. Nothing is sent to a provider before validation passes."""
    from batch_arbiter import prompts
    from batch_arbiter.policy import decide
    from batch_arbiter.pricing import PriceTable, PricingError, provider_of
    from batch_arbiter.providers import ProviderConfig, make_provider
    from batch_arbiter.records import Outcome, Status, Via
    from batch_arbiter.report import RunContext, outputs, summary
    from batch_arbiter.results import RESULTS_FILE, ResultWriter
    from batch_arbiter.state import STATE_FILE, RunState

    workspace: Path = runner.workspace.resolve()

    def bad(message: str) -> int:
        runner.error(message, title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT

    if settings.provider != "anthropic":
        return bad(f"input `provider`: {settings.provider} is not supported yet; use `anthropic`")
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    api_key = api_key or next((os.environ[v] for v in API_KEY_ENV[settings.provider] if os.environ.get(v)), None)
    if not api_key:
        names = " or ".join(API_KEY_ENV[settings.provider])
        return bad(f"no API key: set the `api-key` input (from a secret) or {names}")
    runner.mask(api_key)

    try:
        prices = PriceTable.load(_inside(workspace, settings.pricing_file, "pricing-file"))
    except (PricingError, BadInput) as exc:
        return bad(str(exc))
    model = settings.model or DEFAULT_MODELS[settings.provider]
    if provider_of(model) != settings.provider or not prices.knows(model):
        known = ", ".join(prices.known_models(settings.provider))
        return bad(f"input `model`: unknown {settings.provider} model {model!r}; known: {known}")

    try:
        out_dir = _inside(workspace, settings.output_dir, "output-dir") or workspace / "batch-results"
        system = None
        if settings.system_prompt_file:
            system_path = _inside(workspace, settings.system_prompt_file, "system-prompt-file")
            assert system_path is not None
            if not system_path.is_file():
                raise BadInput(f"system prompt file not found: {settings.system_prompt_file}")
            system = system_path.read_text(encoding="utf-8")
        files = prompts.expand(settings.prompt_files, workspace)
        requests = prompts.load_requests(files, workspace, system)
    except (BadInput, prompts.PromptError) as exc:
        return bad(str(exc))

    workload = settings.workload or runner.workflow or "default"
    decision = decide(workload, settings.mode, runner.event_name, settings.upgrade)
    today = datetime.now(UTC).date()

    if settings.budget_usd is not None:
        estimate = _worst_case_cost(requests, model, settings.max_tokens, prices, today, decision.mode == "batch")
        if estimate > settings.budget_usd:
            return bad(
                f"estimated cost ${estimate:.4f} (all max-tokens used) is over budget-usd ${settings.budget_usd:.4f}; "
                "nothing was submitted"
            )

    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    batch_id = settings.batch_id
    previous = RunState.read(state_path)
    if batch_id is None and previous is not None and previous.collectable and previous.provider == settings.provider:
        # A re-run of the same step: collect what was already paid for instead of submitting again.
        batch_id = previous.batch_id
        runner.notice(f"found {STATE_FILE} for batch {batch_id}; collecting it instead of submitting again")
    deadline_wall = datetime.now(UTC) + timedelta(minutes=settings.timeout_minutes)
    state = RunState(state_path, settings.provider, model, workload, deadline_wall.isoformat(timespec="seconds"))

    provider = make_provider(
        settings.provider,
        ProviderConfig(
            model=model,
            api_key=api_key,
            base_url=settings.base_url,
            effort=settings.effort,
            max_tokens=settings.max_tokens,
        ),
    )
    writer = ResultWriter(out_dir, prices, model, today)
    from batch_arbiter.engine import Engine

    engine = Engine(
        provider,
        writer,
        state,
        deadline=time.monotonic() + settings.timeout_minutes * 60,
        poll_interval=settings.poll_interval,
        on_timeout=settings.on_timeout,
        concurrency=settings.max_concurrency,
        log=runner.log,
        warn=runner.warning,
    )
    ctx = RunContext(workload, settings.provider, model, settings.effort, decision, out_dir, out_dir / RESULTS_FILE)
    runner.log(f"{workload}: {len(requests)} requests, {decision.mode} on {model} ({decision.reason})")
    try:
        if decision.mode == "sync" and batch_id is None:
            result = engine.run_sync(requests)
        else:
            result = engine.run_batch(requests, batch_id)
    except Cancelled as exc:
        # Every request still gets a line: pending in the batch, or canceled if it never left here.
        status, via, note = (
            (Status.PENDING, Via.BATCH, "left in the batch; collect later")
            if state.batch_id
            else (Status.CANCELED, Via.SYNC, "the run was cancelled before this request ran")
        )
        for request in requests:
            if request.custom_id not in writer.written:
                writer.write(Outcome(request.custom_id, status, error=note), request.source, via)
        writer.close()
        where = (
            f" Batch {state.batch_id} stays with the provider; collect it with `batch-id: {state.batch_id}`"
            f" or by re-running with {state_path.relative_to(workspace)} present."
            if state.batch_id
            else ""
        )
        runner.warning(f"cancelled by {exc}; results so far are in {writer.path.relative_to(workspace)}.{where}")
        runner.set_outputs(
            {
                "status": "pending" if state.batch_id else "failed",
                "batch-id": state.batch_id or "",
                "results-file": str(writer.path),
            }
        )
        return EXIT_INCOMPLETE
    finally:
        provider.close()
    writer.close()
    runner.set_outputs(outputs(ctx, result))
    runner.write_summary(summary(ctx, result))
    if result.status in ("succeeded", "pending"):
        return EXIT_OK
    runner.error(
        f"{result.totals.failed} of {result.totals.requests} requests ended without a result; "
        f"see {writer.path.relative_to(workspace)}",
        title="batch-arbiter: incomplete",
    )
    return EXIT_INCOMPLETE


def _inside(workspace: Path, value: str | None, name: str) -> Path | None:
    """A path input, resolved inside the workspace (symlinks included) or refused."""
    if not value:
        return None
    path = (workspace / value).resolve()
    if not path.is_relative_to(workspace):
        raise BadInput(f"input `{name}`: {value!r} is outside the workspace", input=name)
    return path


def _worst_case_cost(
    requests: Sequence[Any], model: str, max_tokens: int, prices: Any, today: Any, batch: bool
) -> float:
    from batch_arbiter.records import Usage

    total = 0.0
    for r in requests:
        chars = sum(len(str(m["content"])) for m in r.messages) + len(r.system or "")
        usage = Usage(input_tokens=chars // 4 + 1, output_tokens=r.max_tokens or max_tokens)
        total += prices.cost(model, usage, today, batch=batch)
    return float(total)
