"""Anthropic Message Batches and Messages through the official `anthropic` SDK."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from batch_arbiter.catalog import EFFORTS, ModelCaps
from batch_arbiter.providers.base import BatchState, BatchStatus, ProviderConfig, ProviderError, RunSpec
from batch_arbiter.records import Outcome, PromptRequest, Status, Usage

# No single wait the server asks for may outlast this; the SDK itself honours any `retry-after`.
RETRY_AFTER_CAP_SECONDS = 30.0


def capped_retry_after(cap: float) -> Callable[[httpx2.Response], None]:
    """A response hook that shortens the server's requested wait before the SDK reads it."""

    def hook(response: httpx2.Response) -> None:
        headers = response.headers
        if "retry-after-ms" in headers:
            try:
                if float(headers["retry-after-ms"]) > cap * 1000:
                    headers["retry-after-ms"] = str(int(cap * 1000))
            except ValueError:
                del headers["retry-after-ms"]
        if "retry-after" in headers:
            seconds = _retry_after_seconds(headers["retry-after"])
            if seconds is None or seconds > cap:
                headers["retry-after"] = f"{cap:g}"

    return hook


def _retry_after_seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._client = anthropic.Anthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=config.max_retries,
            timeout=httpx2.Timeout(config.request_timeout, connect=10.0),
            http_client=anthropic.DefaultHttpxClient(
                event_hooks={"response": [capped_retry_after(RETRY_AFTER_CAP_SECONDS)]}
            ),
        )

    def close(self) -> None:
        self._client.close()

    # -- parameters ------------------------------------------------------------------------------

    def params(self, request: PromptRequest, spec: RunSpec, *, batch: bool) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": request.max_tokens or spec.max_tokens,
            "messages": list(request.messages),
        }
        if request.system:
            # Batches can take longer than the 5-minute cache TTL; the 1-hour TTL keeps hits likely.
            cache: dict[str, str] = {"type": "ephemeral", "ttl": "1h"} if batch else {"type": "ephemeral"}
            params["system"] = [{"type": "text", "text": request.system, "cache_control": cache}]
        if spec.effort:
            params["output_config"] = {"effort": spec.effort}
        return params

    # -- discovery (free endpoints) --------------------------------------------------------------

    def model_caps(self, model: str) -> ModelCaps | None:
        try:
            info = self._client.models.retrieve(model)
        except anthropic.NotFoundError:
            raise ProviderError(f"the API does not know model {model!r}") from None
        except anthropic.APIError:
            return None
        caps = info.capabilities
        if caps is None:
            return None
        effort = caps.effort
        efforts = tuple(level for level in EFFORTS if getattr(getattr(effort, level, None), "supported", False))
        return ModelCaps(efforts=efforts, batch=bool(caps.batch.supported))

    def count_tokens(self, request: PromptRequest, spec: RunSpec) -> int | None:
        params = self.params(request, spec, batch=False)
        try:
            counted = self._client.messages.count_tokens(
                model=params["model"], messages=params["messages"], system=params.get("system", anthropic.omit)
            )
        except anthropic.APIError:
            return None
        return counted.input_tokens

    # -- batch -----------------------------------------------------------------------------------

    def submit(self, requests: Sequence[PromptRequest], spec: RunSpec) -> str:
        body = [{"custom_id": r.custom_id, "params": self.params(r, spec, batch=True)} for r in requests]
        try:
            batch = self._client.messages.batches.create(requests=body)  # type: ignore[arg-type]
        except anthropic.APIError as exc:
            raise ProviderError(f"batch create failed: {describe(exc)}") from None
        return batch.id

    def status(self, batch_id: str) -> BatchStatus:
        try:
            batch = self._client.messages.batches.retrieve(batch_id)
        except anthropic.APIError as exc:
            raise ProviderError(f"batch status failed: {describe(exc)}") from None
        return _status(batch)

    def cancel(self, batch_id: str) -> None:
        try:
            self._client.messages.batches.cancel(batch_id)
        except anthropic.APIError as exc:
            raise ProviderError(f"batch cancel failed: {describe(exc)}") from None

    def results(self, batch_id: str) -> Iterator[Outcome]:
        try:
            for item in self._client.messages.batches.results(batch_id):
                yield _outcome(item.custom_id, item.result)
        except anthropic.APIError as exc:
            raise ProviderError(f"batch results failed: {describe(exc)}") from None

    # -- sync ------------------------------------------------------------------------------------

    def run_sync(self, request: PromptRequest, spec: RunSpec) -> Outcome:
        try:
            # An explicit timeout also lifts the SDK's client-side refusal of large max_tokens.
            message = self._client.messages.create(
                **self.params(request, spec, batch=False), timeout=self._config.sync_timeout
            )
        except anthropic.APIError as exc:
            return Outcome(request.custom_id, Status.ERRORED, model=spec.model, error=describe(exc))
        return Outcome(request.custom_id, Status.SUCCEEDED, message.model, _text(message), _usage(message.usage))


def describe(exc: anthropic.APIError) -> str:
    """A short, key-free description of an SDK error."""
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        kind = error.get("type") or type(exc).__name__
        message = error.get("message") or ""
        return f"HTTP {exc.status_code} {kind}: {message}".strip().rstrip(":")
    if isinstance(exc, anthropic.APITimeoutError):
        return "request timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection error"
    return type(exc).__name__


def _status(batch: MessageBatch) -> BatchStatus:
    state = {
        "in_progress": BatchState.RUNNING,
        "canceling": BatchState.CANCELING,
        "ended": BatchState.ENDED,
    }.get(batch.processing_status, BatchState.RUNNING)
    counts = batch.request_counts
    return BatchStatus(
        batch.id,
        state,
        {
            "processing": counts.processing,
            "succeeded": counts.succeeded,
            "errored": counts.errored,
            "canceled": counts.canceled,
            "expired": counts.expired,
        },
    )


def _outcome(custom_id: str, result: Any) -> Outcome:
    kind = result.type
    if kind == "succeeded":
        message = result.message
        return Outcome(custom_id, Status.SUCCEEDED, message.model, _text(message), _usage(message.usage))
    if kind == "errored":
        inner = getattr(result.error, "error", None)
        error = f"{getattr(inner, 'type', 'error')}: {getattr(inner, 'message', '')}".rstrip(": ")
        return Outcome(custom_id, Status.ERRORED, error=error)
    if kind == "expired":
        return Outcome(custom_id, Status.EXPIRED, error="expired before the batch processed it")
    return Outcome(custom_id, Status.CANCELED, error="canceled before the batch processed it")


def _text(message: Any) -> str:
    return "".join(block.text for block in message.content if getattr(block, "type", None) == "text")


def _usage(usage: Any) -> Usage:
    creation = usage.cache_creation
    one_hour = getattr(creation, "ephemeral_1h_input_tokens", 0) or 0 if creation is not None else 0
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_creation_tokens=usage.cache_creation_input_tokens or 0,
        cache_creation_1h_tokens=one_hour,
    )
