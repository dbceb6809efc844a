"""Everything a run needs, validated from the inputs before any paid call: bad input stops here."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batch_arbiter.core import prompts
from batch_arbiter.core.catalog import (
    BATCH_OUTPUT_CAP,
    Lifecycle,
    clamp_effort,
    default_max_tokens,
    highest_effort,
    offline_caps,
    offline_lifecycle,
    output_limit,
)
from batch_arbiter.core.console import Console
from batch_arbiter.core.policy import Decision, Upgrade, decide, load_policy, upgrade_model
from batch_arbiter.core.pricing import PriceTable
from batch_arbiter.core.records import PromptRequest
from batch_arbiter.core.settings import Settings
from batch_arbiter.core.structured import SchemaError, check_schema, read_schema
from batch_arbiter.errors import InputError, ProviderError
from batch_arbiter.providers import Provider, ProviderConfig, RunSpec, make_provider
from batch_arbiter.providers.registry import ProviderInfo, api_key_from, info, price_table
from batch_arbiter.run.state import STATE_FILE, RunState

__all__ = ["Prepared", "inside", "prepare"]


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
    # time.monotonic() at which the batch wait ends: the run's clock starts when its inputs are read.
    deadline: float
    upgrade: Upgrade | None = None
    notes: list[str] = field(default_factory=list)
    # time.monotonic() when the step began: the runner bills the step's minutes from here.
    started: float = field(default_factory=time.monotonic)
    # Where the run's max_tokens came from (the input, or the default for its effort), for the summary.
    max_tokens_why: str = "the max-tokens input"
    # What the run reports; the provider adds what it did on its own (a lost create recovered).
    events: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path | None:
        """The `metrics-file` input, resolved (it was checked to lie in the workspace)."""
        return inside(self.workspace, self.settings.metrics_file, "metrics-file")


def _api_key(settings: Settings, vendor: ProviderInfo, console: Console) -> str:
    """The key the run uses, masked in every log line from here on; surrounding whitespace removed."""
    given = settings.api_key.get_secret_value() if settings.api_key else None
    api_key = api_key_from(vendor, given, os.environ)
    if api_key and api_key != api_key.strip():
        console.mask(api_key)
        api_key = api_key.strip()
        console.notice("the API key ends or starts with whitespace (a newline pasted into the secret?); it was removed")
    if not api_key:
        names = " or ".join(vendor.key_variables)
        raise InputError(f"no API key: set the `api-key` input (from a secret) or {names}")
    console.mask(api_key)
    return api_key


def _system_prompt(settings: Settings, workspace: Path) -> str | None:
    """The `system-prompt-file`'s text (a byte-order mark dropped), or None when none is given."""
    if not settings.system_prompt_file:
        return None
    path = inside(workspace, settings.system_prompt_file, "system-prompt-file")
    if path is None or not path.is_file():
        raise InputError(f"system prompt file not found: {settings.system_prompt_file}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = f"not UTF-8 text (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise InputError(f"cannot read system prompt file {settings.system_prompt_file}: {why}") from None


def _response_schema(settings: Settings, workspace: Path, vendor: ProviderInfo) -> dict[str, Any] | None:
    """The `response-schema` file, read and checked (JSON Schema, and what the provider takes), or None."""
    if not settings.response_schema:
        return None
    inside(workspace, settings.response_schema, "response-schema")
    try:
        schema = read_schema(settings.response_schema, workspace, "input `response-schema`")
        check_schema(schema, f"input `response-schema` ({settings.response_schema})", vendor.schema_rules)
    except SchemaError as exc:
        raise InputError(str(exc), input="response-schema") from None
    return schema


def inside(workspace: Path, value: str | None, name: str) -> Path | None:
    """A path input, resolved inside the workspace (symlinks included) or refused."""
    if not value:
        return None
    path = (workspace / value).resolve()
    if not path.is_relative_to(workspace):
        raise InputError(f"input `{name}`: {value!r} is outside the workspace", input=name)
    return path


def prepare(settings: Settings, console: Console) -> Prepared:
    """Check every input, file and model, and connect the provider; raises InputError on bad input."""
    started = time.monotonic()
    workspace = console.workspace.resolve()
    vendor = info(settings.provider)
    api_key = _api_key(settings, vendor, console)

    prices = price_table(inside(workspace, settings.pricing_file, "pricing-file"))
    policy = load_policy(inside(workspace, settings.policy_file, "policy-file"))
    workload = settings.workload or console.workflow or "default"
    decision = decide(workload, settings.mode, console.event_name, settings.upgrade, policy)
    requested_model = settings.model or decision.model or vendor.default_model
    if not vendor.owns(requested_model) or not prices.knows(requested_model):
        known = ", ".join(prices.known_models(vendor.model_prefix))
        raise InputError(f"input `model`: unknown {vendor.name} model {requested_model!r}; known: {known}")

    out_dir = inside(workspace, settings.output_dir, "output-dir") or workspace / "batch-results"
    inside(workspace, settings.metrics_file, "metrics-file")
    system = _system_prompt(settings, workspace)
    schema = _response_schema(settings, workspace, vendor)
    files = prompts.expand(settings.prompt_files, workspace)
    requests = prompts.load_requests(files, workspace, system, vendor.content_rules, schema, settings.tools)

    today = datetime.now(UTC).date()
    model, upgrade, notes = requested_model, None, []
    if decision.mode == "batch" and decision.upgrade and not settings.batch_id:
        upgrade = upgrade_model(vendor.name, requested_model, prices, today)
        model = upgrade.model

    _refuse_schema_with_tools(vendor, model, requests)
    if not settings.batch_id:
        _refuse_foreign_state(out_dir, workspace, vendor.name, model, requests)
    if settings.mode != "plan":
        _check_writable(out_dir, workspace)

    timeout = settings.timeout_minutes
    if decision.max_wait_minutes is not None and decision.max_wait_minutes < timeout:
        timeout = decision.max_wait_minutes
        notes.append(f"the policy caps the batch wait at {timeout:g} minutes")
    events: list[str] = []

    def on_event(message: str) -> None:
        events.append(message)
        console.warning(message)

    deadline = time.monotonic() + timeout * 60
    config = ProviderConfig(api_key=api_key, base_url=settings.base_url, deadline=deadline, on_event=on_event)
    provider = make_provider(vendor.name, config)
    try:
        caps = provider.model_caps(model)
    except ProviderError as exc:
        provider.close()
        raise InputError(f"input `model`: {exc}") from None
    lifecycle = (caps.lifecycle if caps else None) or offline_lifecycle(model, today)
    try:
        _check_lifecycle(model, lifecycle, today, notes)
    except InputError:
        provider.close()
        raise
    caps = caps or offline_caps(model)
    if caps is not None and not caps.batch and decision.mode == "batch" and not settings.batch_id:
        if settings.mode == "batch":
            provider.close()
            raise InputError(
                f"input `mode`: {model} cannot run in a batch (the provider says so); nothing was sent. "
                "Use `mode: sync` or a model that batches",
                input="mode",
            )
        reason = f"{model} cannot run in a batch, so the run is synchronous"
        decision = replace(decision, mode="sync", upgrade=False, rule="model capability", reason=reason)
        notes.append(reason)
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
        console.warning(note)
    if settings.max_tokens is not None:
        max_tokens, max_tokens_why = settings.max_tokens, "the max-tokens input"
    else:
        limit = (caps.max_output_tokens if caps else None) or output_limit(model)
        max_tokens, max_tokens_why = default_max_tokens(effort, limit, BATCH_OUTPUT_CAP.get(vendor.name))
    return Prepared(
        settings=settings,
        workspace=workspace,
        out_dir=out_dir,
        requests=requests,
        provider=provider,
        spec=RunSpec(model=model, effort=effort, max_tokens=max_tokens),
        max_tokens_why=max_tokens_why,
        started=started,
        decision=decision,
        workload=workload,
        requested_model=requested_model,
        requested_effort=requested_effort,
        prices=prices,
        today=today,
        timeout_minutes=timeout,
        deadline=deadline,
        upgrade=upgrade,
        notes=notes,
        events=events,
    )


def _refuse_schema_with_tools(vendor: ProviderInfo, model: str, requests: list[PromptRequest]) -> None:
    """A model whose API refuses tools beside a response schema: bad input before anything is sent, not
    a batch of requests that all fail."""
    problem = vendor.tools_with_schema(model) if vendor.tools_with_schema is not None else None
    both = next((r for r in requests if r.tools and r.response_schema is not None), None)
    if problem is None or both is None:
        return
    raise InputError(
        f"{both.source}: {problem}; nothing was sent. Use another model, or drop `response-schema` or `tools`.",
        input="response-schema",
    )


def _check_lifecycle(model: str, lifecycle: Lifecycle, today: date, notes: list[str]) -> None:
    """A retired model is bad input (nothing is sent); a deprecated one runs with a warning naming its end."""
    source = f" ({lifecycle.source})" if lifecycle.source else ""
    instead = f"; use {lifecycle.replacement}" if lifecycle.replacement else ""
    if lifecycle.state == "retired":
        when = f" on {lifecycle.retires_on.isoformat()}" if lifecycle.retires_on else ""
        raise InputError(f"input `model`: {model} was retired{when}{source}; nothing was sent{instead}", input="model")
    if lifecycle.state == "deprecated":
        if lifecycle.retires_on is None:
            end = "no retirement date is announced"
        elif lifecycle.retires_on <= today:
            end = f"its retirement, due on {lifecycle.retires_on.isoformat()}, is overdue"
        else:
            end = f"it retires on {lifecycle.retires_on.isoformat()}"
        notes.append(f"{model} is deprecated: {end}{source}{instead}")


def _refuse_foreign_state(
    out_dir: Path, workspace: Path, provider: str, model: str, requests: list[PromptRequest]
) -> None:
    """A state file of a batch still with the provider is collected by a re-run of the same step. Of a
    different run (other requests, model or provider) it is refused: collecting it would report its
    answers as this run's and pay for every new request synchronously."""
    path = out_dir / STATE_FILE
    previous = RunState.read(path)
    shown = path.relative_to(workspace).as_posix() if path.is_relative_to(workspace) else str(path)
    if previous is None and path.is_file():
        # It may name a batch that is paid for: submitting again on a guess could pay twice.
        raise InputError(
            f"{shown} cannot be read as a batch-arbiter state file; nothing was submitted. If it names a batch, "
            f"collect it with `batch-id`; otherwise delete {shown} to start a new batch.",
            input="output-dir",
        )
    if previous is None or not previous.collectable:
        return
    differs = []
    if previous.provider != provider:
        differs.append(f"provider {previous.provider}, not {provider}")
    if previous.model != model:
        differs.append(f"model {previous.model}, not {model}")
    wanted = {r.custom_id for r in requests}
    if previous.custom_ids and set(previous.custom_ids) != wanted:
        gone = len(set(previous.custom_ids) - wanted)
        new = len(wanted - set(previous.custom_ids))
        differs.append(f"its {len(previous.custom_ids)} requests include {gone} not in this run, which has {new} new")
    if not differs:
        return
    raise InputError(
        f"{shown} belongs to batch {previous.batch_id} ({previous.status}), which is not this run's: "
        f"{'; '.join(differs)}. Nothing was submitted. Collect that batch with `batch-id: {previous.batch_id}` "
        f"and its own prompt files and model, or delete {shown} (or set another `output-dir`) to start a new batch.",
        input="output-dir",
    )


def _check_writable(out_dir: Path, workspace: Path) -> None:
    """The output directory takes files: found out now, not after a batch is created and paid for."""
    shown = out_dir.relative_to(workspace).as_posix() if out_dir.is_relative_to(workspace) else str(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise InputError(
            f"input `output-dir`: {shown} cannot be written ({exc.strerror or exc}); nothing was submitted",
            input="output-dir",
        ) from None
