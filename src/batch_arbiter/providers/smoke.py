"""`batch-arbiter smoke`: a live check, for whoever holds a key, that the real APIs still answer as the adapters
expect. The emulator can never prove that; this can, for well under a cent.

On the cheapest live model of each provider whose key is set it runs a two-request batch (one request with a
system prompt cached for an hour) and one synchronous call through the adapter, one plain and one streamed
call through the SDK, a token count and a model lookup, and checks every field the action reads from each
answer: usage fields, 1-hour cache writes, stop reasons, request counts, the results layout. It prints what it
found and what it cost, never the model's text, and exits 1 on any mismatch; without a key for a provider it
says it skipped it.

This module sits with the adapters because it reads the raw answers through the same SDKs; each SDK is
imported only when its provider is checked.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batch_arbiter.core.catalog import RANKING, is_live
from batch_arbiter.core.console import Console
from batch_arbiter.core.pricing import PriceTable, PricingError
from batch_arbiter.core.records import Outcome, PromptRequest, Status, Usage
from batch_arbiter.providers.base import BatchState, Provider, ProviderConfig, RunSpec
from batch_arbiter.providers.registry import REGISTRY, api_key_from, make_provider, price_table

__all__ = ["add_arguments", "command", "smoke_provider"]

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2
COST_LIMIT_USD = 0.01
# Room for a short answer after the thinking a current model does by default (kept low with effort `low`
# where the model takes it).
MAX_TOKENS = 256
PROMPT = "Reply with one short sentence: what is a batch API?"
# Long enough to be cached on every current model (the largest minimum cacheable prefix is 4,096 tokens).
SYSTEM = "You are a terse assistant for a smoke test of an API client. Answer in one sentence. " * 260
ANTHROPIC_STOP_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"}
)
GEMINI_FINISH_REASONS = frozenset({"STOP", "MAX_TOKENS"})


@dataclass
class Findings:
    """What one provider's smoke check found: each check's verdict, and what the calls cost."""

    provider: str
    model: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    cost_usd: float = 0.0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        """Record one verdict; returns it, so that later checks can depend on it."""
        self.checks.append((name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(ok for _, ok, _ in self.checks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`batch-arbiter smoke`'s flags."""
    parser.add_argument("--provider", choices=[*REGISTRY, "all"], default="all", help="which API to check")
    parser.add_argument("--model", help="the model to check (default: the provider's cheapest live model)")
    parser.add_argument("--base-url", help="API base URL (a proxy, or the bundled emulator)")
    parser.add_argument(
        "--wait-minutes", type=float, default=60.0, help="how long to wait for the batch to end (default 60)"
    )
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="seconds between batch status checks")


def command(args: argparse.Namespace, console: Console) -> int:
    """Check every provider whose key is set; 0 when all passed (or none had a key), 1 on any mismatch."""
    names = list(REGISTRY) if args.provider == "all" else [args.provider]
    if args.wait_minutes <= 0 or args.poll_seconds <= 0:
        console.error("batch-arbiter smoke: --wait-minutes and --poll-seconds must be positive")
        return EXIT_BAD_INPUT
    prices = price_table()
    results: list[Findings] = []
    for name in names:
        vendor = REGISTRY[name]
        key = api_key_from(vendor, None, os.environ)
        if not key:
            console.log(f"{name}: skipped (no {' or '.join(vendor.key_variables)} set)")
            continue
        key = key.strip()
        console.mask(key)
        model = args.model if args.model and vendor.owns(args.model) else cheapest_model(name, prices)
        config = ProviderConfig(api_key=key, base_url=args.base_url, on_event=console.warning)
        found = smoke_provider(name, model, config, prices, wait_seconds=args.wait_minutes * 60, poll=args.poll_seconds)
        results.append(found)
        _print(found, console)
    if not results:
        console.log("smoke: skipped, no provider had an API key")
        return EXIT_OK
    failed = [f.provider for f in results if not f.ok]
    if failed:
        console.error(f"smoke: the real API answered other than expected ({', '.join(failed)}); see FAIL lines")
        return EXIT_MISMATCH
    total = sum(f.cost_usd for f in results)
    console.log(f"smoke: every check passed ({', '.join(f.provider for f in results)}), ${total:.6f} in all")
    return EXIT_OK


def cheapest_model(provider: str, prices: PriceTable) -> str:
    """The provider's ranked model with the lowest sync input + output price that is live today."""
    today = datetime.now(UTC).date()
    priced = []
    for model in RANKING[provider]:
        if not is_live(model, today):
            continue
        try:
            rate = prices.rate(model, today)
        except PricingError:
            continue
        priced.append((rate.input + rate.output, model))
    return min(priced)[1] if priced else REGISTRY[provider].default_model


def _print(found: Findings, console: Console) -> None:
    console.log(f"{found.provider} on {found.model}:")
    for name, ok, detail in found.checks:
        console.log(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    console.log(f"  cost: ${found.cost_usd:.6f} (limit ${COST_LIMIT_USD:.2f})")


def smoke_provider(
    name: str, model: str, config: ProviderConfig, prices: PriceTable, *, wait_seconds: float, poll: float
) -> Findings:
    """Run every check against one provider; an error in a check is that check's failure, never a crash."""
    found = Findings(name, model)
    # Anthropic models think adaptively by default; effort low keeps that short. Gemini's cheapest models take
    # thinking budgets, where leaving thinking to the model is the cheaper choice.
    spec = RunSpec(model=model, effort="low" if name == "anthropic" else None, max_tokens=MAX_TOKENS)
    provider = make_provider(name, config)
    raw = _ANTHROPIC if name == "anthropic" else _GEMINI
    today = datetime.now(UTC).date()
    try:
        _guarded(found, "model lookup", lambda: _lookup(found, provider, spec, raw, config))
        _guarded(found, "token count", lambda: _count(found, provider, spec))
        # The action's own synchronous path (the adapter's run_sync, as a fallback calls it).
        adapter_sync = _guarded(found, "adapter sync call", lambda: _adapter_sync(found, provider, spec))
        if isinstance(adapter_sync, Outcome):
            found.cost_usd += prices.cost(model, adapter_sync.usage, today, batch=False, per_request=True)
        probes: tuple[tuple[str, Callable[[Findings, ProviderConfig, str], Usage]], ...] = (
            ("sync call", raw.sync),
            ("streamed call", raw.stream),
        )
        for label, probe in probes:
            usage = _guarded(found, label, functools.partial(probe, found, config, model))
            if isinstance(usage, Usage):
                found.cost_usd += prices.cost(model, usage, today, batch=False, per_request=True)
        outcomes = _guarded(found, "batch", lambda: _batch(found, provider, spec, raw, config, wait_seconds, poll))
        for outcome in outcomes if isinstance(outcomes, list) else []:
            found.cost_usd += prices.cost(model, outcome.usage, today, batch=True, per_request=True)
    finally:
        provider.close()
    found.check("cost", found.cost_usd < COST_LIMIT_USD, f"${found.cost_usd:.6f}, under one cent")
    return found


def _guarded(found: Findings, name: str, step: Callable[[], Any]) -> Any:
    try:
        return step()
    except Exception as exc:  # every failure of a live check is a finding, never a traceback
        found.check(name, False, f"{type(exc).__name__}: {str(exc)[:300]}")
        return None


def _lookup(found: Findings, provider: Provider, spec: RunSpec, raw: _Raw, config: ProviderConfig) -> None:
    # Through the adapter (what `prepare` asks), then the raw answer's fields.
    caps = provider.model_caps(spec.model)
    if caps is not None:
        state = caps.lifecycle.state if caps.lifecycle else "not given"
        found.check("model caps", state != "retired", f"lifecycle {state}, batch {caps.batch}, efforts {caps.efforts}")
    raw.lookup(found, config, spec.model)


def _count(found: Findings, provider: Provider, spec: RunSpec) -> None:
    counted = provider.count_tokens(PromptRequest("smoke-count", "smoke", PROMPT), spec)
    found.check("token count", isinstance(counted, int) and counted > 0, f"{counted} input tokens")


def _adapter_sync(found: Findings, provider: Provider, spec: RunSpec) -> Outcome:
    outcome = provider.run_sync(PromptRequest("smoke-sync", "smoke", PROMPT), spec)
    _check_outcome(found, "adapter sync call", outcome)
    return outcome


def _batch(
    found: Findings,
    provider: Provider,
    spec: RunSpec,
    raw: _Raw,
    config: ProviderConfig,
    wait_seconds: float,
    poll: float,
) -> list[Outcome]:
    requests = [
        PromptRequest("smoke-cached", "smoke", PROMPT, system=SYSTEM),
        PromptRequest("smoke-plain", "smoke", PROMPT),
    ]
    batch_id = provider.submit(requests, spec, token=f"batch-arbiter-smoke-{int(time.time())}")
    found.check("batch create", bool(batch_id), batch_id)
    deadline = time.monotonic() + wait_seconds
    status = provider.status(batch_id)
    while status.state not in (BatchState.ENDED, BatchState.FAILED) and time.monotonic() < deadline:
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        status = provider.status(batch_id)
    if status.state not in (BatchState.ENDED, BatchState.FAILED):
        provider.cancel(batch_id)
        found.check("batch ended", False, f"still {status.state} after {wait_seconds / 60:g} minutes; cancelled")
        return []
    found.check("batch ended", status.state is BatchState.ENDED, f"{status.state}, counts {status.counts}")
    raw.batch_counts(found, config, batch_id)
    outcomes = list(provider.results(batch_id))
    by_id = {o.custom_id: o for o in outcomes}
    found.check("batch results", set(by_id) == {r.custom_id for r in requests}, f"{sorted(by_id)}")
    for outcome in outcomes:
        _check_outcome(found, f"batch result {outcome.custom_id}", outcome)
    cached = by_id.get("smoke-cached")
    if cached is not None and provider.name == "anthropic":
        u = cached.usage
        ok = (u.cache_creation_tokens > 0 and u.cache_creation_1h_tokens == u.cache_creation_tokens) or (
            u.cache_creation_tokens == 0 and u.cache_read_tokens > 0
        )
        found.check(
            "1-hour cache write",
            ok,
            f"written {u.cache_creation_tokens} ({u.cache_creation_1h_tokens} for 1 hour), read {u.cache_read_tokens}",
        )
    raw.results_layout(found, config, batch_id)
    return outcomes


def _check_outcome(found: Findings, name: str, outcome: Outcome) -> None:
    u = outcome.usage
    ok = outcome.status is Status.SUCCEEDED and bool(outcome.text) and u.input_tokens + u.cache_read_tokens > 0
    ok = ok and u.output_tokens > 0 and bool(outcome.model)
    found.check(
        name,
        ok,
        f"{outcome.status}, model {outcome.model}, {len(outcome.text or '')} characters, usage {u.as_dict()}"
        + (f", error {outcome.error}" if outcome.error else ""),
    )


# -- raw answers, per provider -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    lookup: Callable[[Findings, ProviderConfig, str], None]
    sync: Callable[[Findings, ProviderConfig, str], Usage]
    stream: Callable[[Findings, ProviderConfig, str], Usage]
    batch_counts: Callable[[Findings, ProviderConfig, str], None]
    results_layout: Callable[[Findings, ProviderConfig, str], None]


def _anthropic_client(config: ProviderConfig) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key=config.api_key, base_url=config.base_url, max_retries=2, timeout=120.0)


def _anthropic_usage(found: Findings, name: str, message: dict[str, Any]) -> Usage:
    usage = message.get("usage") or {}
    fields = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    missing = [f for f in fields if not isinstance(usage.get(f), int)]
    creation = usage.get("cache_creation")
    if not isinstance(creation, dict) or not all(
        isinstance(creation.get(k), int) for k in ("ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens")
    ):
        missing.append("cache_creation.ephemeral_1h_input_tokens/5m")
    text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
    stop = message.get("stop_reason")
    ok = not missing and bool(text) and stop in ANTHROPIC_STOP_REASONS and bool(message.get("model"))
    detail = f"stop_reason {stop}, {len(text)} characters, usage { ({k: usage.get(k) for k in fields}) }"
    found.check(name, ok, detail + (f"; missing {', '.join(missing)}" if missing else ""))
    return Usage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
        cache_creation_tokens=usage.get("cache_creation_input_tokens") or 0,
    )


def _anthropic_lookup(found: Findings, config: ProviderConfig, model: str) -> None:
    with _anthropic_client(config) as client:
        info = client.models.retrieve(model).to_dict()
    caps = info.get("capabilities") or {}
    batch = (caps.get("batch") or {}).get("supported")
    ok = info.get("id") == model and info.get("lifecycle") in ("active", "deprecated") and isinstance(batch, bool)
    ok = ok and isinstance(caps.get("effort"), dict)
    found.check("model lookup", ok, f"{info.get('id')}, lifecycle {info.get('lifecycle')}, batch {batch}")


def _anthropic_sync(found: Findings, config: ProviderConfig, model: str) -> Usage:
    with _anthropic_client(config) as client:
        message = client.messages.create(
            model=model,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": PROMPT}],
            output_config={"effort": "low"},
        )
    return _anthropic_usage(found, "sync call", message.to_dict())


def _anthropic_stream(found: Findings, config: ProviderConfig, model: str) -> Usage:
    with (
        _anthropic_client(config) as client,
        client.messages.stream(
            model=model,
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": PROMPT}],
            output_config={"effort": "low"},
        ) as s,
    ):
        pieces = sum(1 for _ in s.text_stream)
        message = s.get_final_message()
    found.check("stream events", pieces > 0, f"{pieces} text deltas")
    return _anthropic_usage(found, "streamed call", message.to_dict())


def _anthropic_counts(found: Findings, config: ProviderConfig, batch_id: str) -> None:
    with _anthropic_client(config) as client:
        batch = client.messages.batches.retrieve(batch_id).to_dict()
    counts = batch.get("request_counts") or {}
    names = ("processing", "succeeded", "errored", "canceled", "expired")
    ok = all(isinstance(counts.get(n), int) for n in names) and counts.get("succeeded") == 2
    ok = ok and batch.get("processing_status") == "ended" and bool(batch.get("results_url"))
    found.check("batch request counts", ok, f"{batch.get('processing_status')}, {counts}")


def _anthropic_layout(found: Findings, config: ProviderConfig, batch_id: str) -> None:
    import json

    with (
        _anthropic_client(config) as client,
        client.messages.batches.with_streaming_response.results(batch_id) as response,
    ):
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    for line in lines:
        result = line.get("result") or {}
        name = f"results line {line.get('custom_id')}"
        if result.get("type") != "succeeded" or not isinstance(result.get("message"), dict):
            found.check(name, False, f"result type {result.get('type')}")
            continue
        _anthropic_usage(found, name, result["message"])


_ANTHROPIC = _Raw(_anthropic_lookup, _anthropic_sync, _anthropic_stream, _anthropic_counts, _anthropic_layout)


def _gemini_client(config: ProviderConfig) -> Any:
    from google import genai
    from google.genai import types

    from batch_arbiter.providers.gemini import API_VERSION

    options = types.HttpOptions(base_url=config.base_url, api_version=API_VERSION, timeout=120_000)
    return genai.Client(api_key=config.api_key, vertexai=False, http_options=options)


def _gemini_usage(found: Findings, name: str, response: dict[str, Any]) -> Usage:
    usage = response.get("usageMetadata") or {}
    missing = [f for f in ("promptTokenCount", "candidatesTokenCount") if not isinstance(usage.get(f), int)]
    candidates = response.get("candidates") or [{}]
    finish = candidates[0].get("finishReason")
    parts = (candidates[0].get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
    ok = not missing and finish in GEMINI_FINISH_REASONS and bool(response.get("modelVersion"))
    shown = {k: v for k, v in usage.items() if k.endswith("Count") and v is not None}
    detail = f"finishReason {finish}, {len(text)} characters, usage {shown}"
    found.check(name, ok, detail + (f"; missing {', '.join(missing)}" if missing else ""))
    cached = usage.get("cachedContentTokenCount") or 0
    return Usage(
        input_tokens=max((usage.get("promptTokenCount") or 0) - cached, 0),
        output_tokens=(usage.get("candidatesTokenCount") or 0) + (usage.get("thoughtsTokenCount") or 0),
        cache_read_tokens=cached,
    )


def _gemini_lookup(found: Findings, config: ProviderConfig, model: str) -> None:
    client = _gemini_client(config)
    try:
        info = client.models.get(model=model)
    finally:
        client.close()
    actions = info.supported_actions or []
    found.check(
        "model lookup",
        info.name == f"models/{model}" and "generateContent" in actions and "batchGenerateContent" in actions,
        f"{info.name}, actions {sorted(actions)}",
    )


def _gemini_sync(found: Findings, config: ProviderConfig, model: str) -> Usage:
    client = _gemini_client(config)
    try:
        response = client.models.generate_content(
            model=model, contents=PROMPT, config={"max_output_tokens": MAX_TOKENS}
        )
    finally:
        client.close()
    return _gemini_usage(found, "sync call", response.model_dump(mode="json", by_alias=True))


def _gemini_stream(found: Findings, config: ProviderConfig, model: str) -> Usage:
    client = _gemini_client(config)
    try:
        chunks = [
            c.model_dump(mode="json", by_alias=True)
            for c in client.models.generate_content_stream(
                model=model, contents=PROMPT, config={"max_output_tokens": MAX_TOKENS}
            )
        ]
    finally:
        client.close()
    found.check("stream events", len(chunks) > 0, f"{len(chunks)} chunks")
    last = chunks[-1] if chunks else {}
    text = "".join(
        p.get("text") or ""
        for c in chunks
        for p in ((c.get("candidates") or [{}])[0].get("content") or {}).get("parts") or []
    )
    merged = {**last, "candidates": [{**((last.get("candidates") or [{}])[0]), "content": {"parts": [{"text": text}]}}]}
    return _gemini_usage(found, "streamed call", merged)


def _gemini_job(config: ProviderConfig, batch_id: str) -> dict[str, Any]:
    from batch_arbiter.providers.gemini import raw_get

    client = _gemini_client(config)
    try:
        return raw_get(client, batch_id)
    finally:
        client.close()


def _gemini_counts(found: Findings, config: ProviderConfig, batch_id: str) -> None:
    job = _gemini_job(config, batch_id)
    meta = job.get("metadata") or {}
    stats = meta.get("batchStats") or {}
    # int64 counts arrive as strings.
    ok = str(stats.get("requestCount")) == "2" and str(stats.get("successfulRequestCount")) == "2"
    ok = ok and meta.get("state") == "BATCH_STATE_SUCCEEDED"
    found.check("batch request counts", ok, f"{meta.get('state')}, {stats}")


def _gemini_layout(found: Findings, config: ProviderConfig, batch_id: str) -> None:
    job = _gemini_job(config, batch_id)
    output = (job.get("metadata") or {}).get("output") or {}
    items = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
    found.check("results layout", len(items) == 2, f"{len(items)} inline responses, keys {sorted(output)}")
    for item in items:
        key = (item.get("metadata") or {}).get("key")
        response = item.get("response")
        if not isinstance(response, dict):
            found.check(f"results line {key}", False, f"no response: {item.get('error')}")
            continue
        _gemini_usage(found, f"results line {key}", response)


_GEMINI = _Raw(_gemini_lookup, _gemini_sync, _gemini_stream, _gemini_counts, _gemini_layout)
