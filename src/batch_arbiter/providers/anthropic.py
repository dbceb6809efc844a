"""Anthropic Message Batches and Messages through the official `anthropic` SDK."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from batch_arbiter.core.catalog import EFFORTS, Lifecycle, ModelCaps, offline_caps
from batch_arbiter.core.conversation import CallResult, ConversationRequest, ToolCall, TurnOutcome
from batch_arbiter.core.records import Outcome, PromptRequest, Status, Usage, as_count
from batch_arbiter.core.tools import ToolSpec
from batch_arbiter.errors import AuthError, NoSuchBatch, ProviderError
from batch_arbiter.providers.base import BatchState, BatchStatus, ProviderConfig, RunSpec, describe_error
from batch_arbiter.providers.retry import Attempt, before_answer
from batch_arbiter.providers.schemas import wire_schema

# No single wait the server asks for may outlast this; the SDK itself honours any `retry-after`.
RETRY_AFTER_CAP_SECONDS = 30.0
# Retries of one synchronous call before its answer starts (429s with retry-after are expected in a
# large fallback).
SYNC_MAX_RETRIES = 6
# Attempts at creating one batch; each ambiguous failure is checked against the batch list first.
CREATE_ATTEMPTS = 3
# Stop reasons of an answer cut short: the text so far is kept, and marked incomplete.
INCOMPLETE_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})
# The cache TTL a batch's system prompt asks for.
BATCH_CACHE_TTL = "1h"
# Batches created this long before our first attempt still count as ours (clock skew).
CREATE_MATCH_SLACK = timedelta(seconds=60)
# The server tools by their common names: the newest version of each in anthropic 2.12.0. A web tool of
# 2026-02-09 or later filters with code execution itself, which then must be 2026-01-20 or later.
SERVER_TOOLS: dict[str, dict[str, str]] = {
    "web-search": {"type": "web_search_20260318", "name": "web_search"},
    "web-fetch": {"type": "web_fetch_20260318", "name": "web_fetch"},
    "code-execution": {"type": "code_execution_20260521", "name": "code_execution"},
}
# Server tool blocks by the common name of the tool that ran them (code execution has several).
_SERVER_TOOL_NAMES = {
    "web_search": "web-search",
    "web_fetch": "web-fetch",
    "code_execution": "code-execution",
    "bash_code_execution": "code-execution",
    "text_editor_code_execution": "code-execution",
}
# Blocks that must go back exactly as they came and take no cache breakpoint.
_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def capped_retry_after(cap: Callable[[], float]) -> Callable[[httpx2.Response], None]:
    """A response hook that shortens the server's requested wait before the SDK reads it."""

    def hook(response: httpx2.Response) -> None:
        limit = cap()
        headers = response.headers
        if "retry-after-ms" in headers:
            try:
                if float(headers["retry-after-ms"]) > limit * 1000:
                    headers["retry-after-ms"] = str(int(limit * 1000))
            except ValueError:
                del headers["retry-after-ms"]
        if "retry-after" in headers:
            seconds = _retry_after_seconds(headers["retry-after"])
            if seconds is None or seconds > limit:
                headers["retry-after"] = f"{limit:g}"

    return hook


def _retry_after_seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


class AnthropicProvider:
    """The Message Batches API and the Messages API through the `anthropic` SDK."""

    name = "anthropic"
    max_batch_requests = 100_000
    max_batch_bytes = 256 * 1024 * 1024

    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._note = config.on_event or (lambda message: None)
        self._ttl_warned = False
        self._client = anthropic.Anthropic(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=config.max_retries,
            timeout=httpx2.Timeout(config.request_timeout, connect=10.0),
            http_client=anthropic.DefaultHttpxClient(event_hooks={"response": [capped_retry_after(self._wait_cap)]}),
        )
        # Sync calls are retried by `before_answer` only, never by the SDK: its retries include timeouts,
        # and a call timed out during generation may be billed again on every retry.
        self._sync = self._client.with_options(max_retries=0)

    def _wait_cap(self) -> float:
        """Before the deadline, no wait may run past it; after it (the fallback), the plain cap."""
        if self._config.deadline is None:
            return RETRY_AFTER_CAP_SECONDS
        remaining = self._config.deadline - time.monotonic()
        return RETRY_AFTER_CAP_SECONDS if remaining <= 0 else max(0.1, min(RETRY_AFTER_CAP_SECONDS, remaining))

    def close(self) -> None:
        """Close the SDK client and its connections."""
        self._client.close()

    # -- parameters ------------------------------------------------------------------------------

    def params(self, request: PromptRequest, spec: RunSpec, *, batch: bool) -> dict[str, Any]:
        """The Messages parameters of one request; in a `batch` the system prompt is cached for an hour. A
        response schema goes in `output_config.format`."""
        params: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": request.max_tokens or spec.max_tokens,
            "messages": list(request.messages),
        }
        # Batches can take longer than the 5-minute cache TTL; the 1-hour TTL keeps hits likely. It is GA:
        # `ttl` is in the non-beta CacheControlEphemeralParam (anthropic/types/cache_control_ephemeral_param.py)
        # and the prompt-caching docs, so no `extended-cache-ttl` beta header is sent; what the API wrote is
        # read back from usage.cache_creation instead (`_check_cache_ttl`). A conversation's newest block
        # carries the same breakpoint.
        cache: dict[str, str] = {"type": "ephemeral", "ttl": BATCH_CACHE_TTL} if batch else {"type": "ephemeral"}
        if request.system:
            params["system"] = [{"type": "text", "text": request.system, "cache_control": cache}]
        output_config: dict[str, Any] = {}
        if spec.effort:
            output_config["effort"] = spec.effort
        if request.response_schema is not None:
            # On every call of the request, batch or sync: the grammar constrains the model's own text.
            output_config["format"] = {"type": "json_schema", "schema": wire_schema(request.response_schema)}
        if output_config:
            params["output_config"] = output_config
        if isinstance(request, ConversationRequest):
            if request.tools:
                params["tools"] = [tool_param(t) for t in request.specs]
            params["messages"] = conversation_messages(request, cache)
        return params

    # -- discovery (free endpoints) --------------------------------------------------------------

    def model_caps(self, model: str) -> ModelCaps | None:
        """Efforts and batch support from the models endpoint; a model it does not know is a ProviderError."""
        try:
            info = self._client.models.retrieve(model)
        except anthropic.NotFoundError:
            raise ProviderError(f"the API does not know model {model!r}") from None
        except anthropic.APIError:
            return None
        # ModelInfo.lifecycle is the retirement signal; a past `retires_at` on a deprecated model means
        # retirement is overdue, not that it happened (anthropic/types/model_info.py).
        retires = info.retires_at.date() if info.retires_at else None
        lifecycle = Lifecycle(info.lifecycle, retires, None, "the Anthropic models endpoint")
        caps = info.capabilities
        if caps is None:
            offline = offline_caps(model)
            if offline is None:
                return ModelCaps((), lifecycle=lifecycle)
            return ModelCaps(offline.efforts, offline.batch, offline.max_output_tokens, lifecycle)
        effort = caps.effort
        efforts = tuple(level for level in EFFORTS if getattr(getattr(effort, level, None), "supported", False))
        limit = info.max_tokens if isinstance(info.max_tokens, int) and info.max_tokens > 0 else None
        return ModelCaps(
            efforts=efforts, batch=bool(caps.batch.supported), max_output_tokens=limit, lifecycle=lifecycle
        )

    def count_tokens(self, request: PromptRequest, spec: RunSpec) -> int | None:
        """Input tokens by the free counting endpoint; None when it does not answer."""
        params = self.params(request, spec, batch=False)
        try:
            counted = self._client.messages.count_tokens(
                model=params["model"], messages=params["messages"], system=params.get("system", anthropic.omit)
            )
        except anthropic.APIError:
            return None
        return counted.input_tokens

    # -- batch -----------------------------------------------------------------------------------

    def submit(self, requests: Sequence[PromptRequest], spec: RunSpec, *, token: str | None = None) -> str:
        """Create one Message Batch and return its id; after an ambiguous failure the batch list is checked
        before creating again, so a retry never leaves two paid batches."""
        body = self._encode_batch(requests, spec)
        size = len(requests)
        started = datetime.now(UTC) - CREATE_MATCH_SLACK
        # The SDK would retry a timed-out create on its own and could leave two paid batches; here each
        # retry first asks the batch list whether the lost attempt was accepted after all.
        client = self._client.with_options(max_retries=0)
        ambiguous = False
        batch_id: str | None = None
        error: Exception | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                batch_id = client.post(
                    "/v1/messages/batches",
                    cast_to=MessageBatch,
                    content=body,
                    options={"headers": {"Content-Type": "application/json"}},
                ).id
                break
            except (anthropic.APIConnectionError, anthropic.InternalServerError, ValueError) as exc:
                # A garbled answer (not JSON) may well have created the batch: as ambiguous as a lost one.
                if isinstance(exc, anthropic.APIStatusError) and exc.status_code in (503, 529):
                    error = exc  # overloaded: refused, not accepted
                else:
                    ambiguous, error = True, exc
                    found = self._created_since(started, size, exclude=set())
                    # Adopted only when unambiguous: another job on the same key may have submitted a
                    # batch of the same size at the same time.
                    if len(found) == 1:
                        batch_id = found[0]
                        self._note(
                            f"the answer to a batch create was lost ({describe(exc)}); "
                            f"found the batch it created, {batch_id}, instead of creating another"
                        )
                        break
            except anthropic.RateLimitError as exc:
                error = exc
            except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
                raise AuthError(f"batch create failed: {describe(exc)}") from None
            except anthropic.APIError as exc:
                raise ProviderError(f"batch create failed: {describe(exc)}") from None
            if attempt < CREATE_ATTEMPTS:
                time.sleep(self._retry_wait(error, attempt))
        if batch_id is None:
            reason = describe(error) if error is not None else "no answer"
            raise ProviderError(f"batch create failed after {CREATE_ATTEMPTS} attempts: {reason}")
        if ambiguous:
            others = self._created_since(started, size, exclude={batch_id})
            if len(others) > 1:
                self._note(
                    f"a batch create answer was lost and {len(others)} other batches of this size were created "
                    f"meanwhile ({', '.join(others)}); none was cancelled, since they may belong to other jobs"
                )
                others = []
            for duplicate in others:
                try:
                    self._client.messages.batches.cancel(duplicate)
                    self._note(f"canceled duplicate batch {duplicate} left by a retried create")
                except anthropic.APIError as exc:
                    self._note(f"could not cancel duplicate batch {duplicate}: {describe(exc)}")
        return batch_id

    def find_submitted(self, token: str, since: datetime, size: int) -> str | None:
        """A Message Batch has no name to carry `token`: the one batch of `size` requests created since
        `since` (any state: it may have ended since) is ours; none, or more than one, is no answer."""
        del token
        try:
            page = self._client.messages.batches.list(limit=100)
        except (anthropic.APIError, ValueError):
            return None
        found = [b.id for b in page.data if b.created_at >= since - CREATE_MATCH_SLACK and _total(b) == size]
        return found[0] if len(found) == 1 else None

    def _encode_batch(self, requests: Sequence[PromptRequest], spec: RunSpec) -> bytes:
        """The create body, encoded here in one pass. The SDK's `batches.create` would first walk and
        copy every parameter of every request (its type transform): at 100,000 requests that costs
        more time and memory than the whole rest of the submit. The wire format is the same."""
        parts = [b'{"requests":[']
        for i, request in enumerate(requests):
            item = {"custom_id": request.custom_id, "params": self.params(request, spec, batch=True)}
            parts.append((b"," if i else b"") + json.dumps(item, ensure_ascii=False).encode("utf-8"))
        parts.append(b"]}")
        return b"".join(parts)

    def _created_since(self, since: datetime, size: int, exclude: set[str]) -> list[str]:
        """Running batches of our size created since `since`, oldest first (the list is newest first)."""
        try:
            page = self._client.messages.batches.list(limit=20)
        except (anthropic.APIError, ValueError):
            return []
        found = [
            b.id
            for b in page.data
            if b.created_at >= since
            and b.id not in exclude
            and b.processing_status == "in_progress"
            and b.request_counts.processing == size
        ]
        return found[::-1]

    def _retry_wait(self, error: Exception | None, attempt: int) -> float:
        wait = 0.5 * 2.0**attempt
        if isinstance(error, anthropic.APIStatusError):
            asked = _retry_after_seconds(error.response.headers.get("retry-after", ""))
            wait = asked if asked is not None and asked > 0 else wait
        return min(wait, self._wait_cap())

    def _check_cache_ttl(self, usage: Usage) -> None:
        """Warn once when the batch's 1-hour cache writes came back as 5-minute ones: they are priced as
        billed (the 5-minute rate), and later requests may miss a cache that lapsed."""
        written_5m = usage.cache_creation_tokens - usage.cache_creation_1h_tokens
        if written_5m <= 0 or self._ttl_warned:
            return
        self._ttl_warned = True
        self._note(
            f"the batch asked for 1-hour cache writes, but the API wrote {written_5m:,} tokens with the 5-minute "
            "TTL (usage.cache_creation); they are priced as billed, and later requests may miss the cache"
        )

    def status(self, batch_id: str) -> BatchStatus:
        """The batch's processing status and request counts."""
        try:
            batch = self._client.messages.batches.retrieve(batch_id)
        except (anthropic.APIError, ValueError) as exc:
            raise batch_error(batch_id, "status", exc) from None
        return _status(batch)

    def cancel(self, batch_id: str) -> None:
        """Ask the API to cancel the batch; what it finished stays collectable."""
        try:
            self._client.messages.batches.cancel(batch_id)
        except (anthropic.APIError, ValueError) as exc:
            raise batch_error(batch_id, "cancel", exc) from None

    def results(self, batch_id: str) -> Iterator[Outcome]:
        """Stream the ended batch's results file, one Outcome per line; a cut stream is a ProviderError."""
        try:
            # The raw JSONL lines, read through the SDK (auth, retries, the absolute results_url) but
            # decoded here: building a typed model per line costs more than the rest of a 100k collect.
            with self._client.messages.batches.with_streaming_response.results(batch_id) as response:
                for line in response.iter_lines():
                    if line.strip():
                        item = json.loads(line)
                        outcome = _outcome(item["custom_id"], item["result"], asked_ttl=BATCH_CACHE_TTL)
                        self._check_cache_ttl(outcome.usage)
                        yield outcome
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError, anthropic.NotFoundError) as exc:
            raise batch_error(batch_id, "results", exc) from None
        except anthropic.APIError as exc:
            raise ProviderError(f"batch results failed: {describe(exc)}") from None
        except (httpx2.HTTPError, ValueError) as exc:
            # A download cut mid-stream surfaces from the transport or the JSONL decoder, not the SDK.
            raise ProviderError(f"batch results download broke off: {type(exc).__name__}") from None

    # -- sync ------------------------------------------------------------------------------------

    def run_sync(self, request: PromptRequest, spec: RunSpec, *, deadline_remaining: float | None = None) -> Outcome:
        """One streamed Messages call, retried only while no answer has started; a failure becomes an
        errored Outcome, but a refused key raises AuthError."""
        # Anthropic has no slower, cheaper synchronous tier, so the time left changes nothing here.
        del deadline_remaining
        params = self.params(request, spec, batch=False)
        # Streamed: a long answer (max_tokens up to the model's limit) is neither refused by the SDK nor
        # waited on through a silent connection; the timeout is the longest silence between events.
        timeout = httpx2.Timeout(self._config.sync_timeout, connect=10.0)

        def once(attempt: Attempt) -> dict[str, Any]:
            with self._sync.messages.stream(**params, timeout=timeout) as stream:
                attempt.started = True  # the API accepted the call: from here on it may be billed
                return stream.get_final_message().to_dict()

        try:
            message = before_answer(once, retryable=_refused_call, wait=self._sync_wait, attempts=SYNC_MAX_RETRIES + 1)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise AuthError(f"sync call failed: {describe(exc)}") from None
        except (anthropic.APIError, httpx2.HTTPError, ValueError) as exc:
            return Outcome(request.custom_id, Status.ERRORED, model=spec.model, error=describe(exc))
        return _message_outcome(request.custom_id, message)

    def _sync_wait(self, error: BaseException, attempt: int) -> float:
        return self._retry_wait(error if isinstance(error, Exception) else None, attempt)


def _refused_call(exc: BaseException) -> bool:
    """A call the API turned away before answering: rate-limited, overloaded or a server error, or a
    connection that never opened. Not a timeout (the request may be generating) nor a 504."""
    if isinstance(exc, anthropic.RateLimitError):
        return True
    if isinstance(exc, anthropic.InternalServerError):
        return not isinstance(exc, anthropic.GatewayTimeoutError) and exc.status_code != 504
    return isinstance(exc, anthropic.APIConnectionError) and not isinstance(exc, anthropic.APITimeoutError)


def batch_error(batch_id: str, purpose: str, exc: Exception) -> ProviderError:
    """A failed call on an existing batch. No key, permission or batch id that the API refused will work on
    a retry or a fallback: those are fatal. The rest (a garbled answer among them) may pass."""
    if isinstance(exc, anthropic.NotFoundError):
        return NoSuchBatch(batch_id, f"batch {purpose}: {describe(exc)}")
    refused = isinstance(exc, (anthropic.AuthenticationError, anthropic.PermissionDeniedError))
    return (AuthError if refused else ProviderError)(f"batch {purpose} failed: {describe(exc)}")


def describe(exc: Exception | None) -> str:
    """A short, key-free description of an SDK error."""
    http = None
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        http = (exc.status_code, error.get("type") or type(exc).__name__, error.get("message") or "")
    return describe_error(
        exc,
        http,
        timed_out=isinstance(exc, anthropic.APITimeoutError),
        connection=isinstance(exc, anthropic.APIConnectionError),
    )


def _total(batch: MessageBatch) -> int:
    c = batch.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


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


def _outcome(custom_id: str, result: dict[str, Any], *, asked_ttl: str = "5m") -> Outcome:
    """One results line's `result`, as the wire has it."""
    kind = result.get("type")
    if kind == "succeeded":
        return _message_outcome(custom_id, result["message"], asked_ttl=asked_ttl)
    if kind == "errored":
        inner = (result.get("error") or {}).get("error") or {}
        error = f"{inner.get('type', 'error')}: {inner.get('message', '')}".rstrip(": ")
        return Outcome(custom_id, Status.ERRORED, error=error)
    if kind == "expired":
        return Outcome(custom_id, Status.EXPIRED, error="expired before the batch processed it")
    return Outcome(custom_id, Status.CANCELED, error="canceled before the batch processed it")


def _message_outcome(custom_id: str, message: dict[str, Any], *, asked_ttl: str = "5m") -> TurnOutcome:
    content = message.get("content") or []
    text = "".join(block.get("text", "") for block in content if block.get("type") == "text")
    usage = message.get("usage") or {}
    written = usage.get("cache_creation_input_tokens") or 0
    creation = usage.get("cache_creation")
    if not isinstance(creation, dict):
        # No breakdown: the writes are taken to be at the TTL asked for (never priced below what was asked).
        creation = {"ephemeral_1h_input_tokens": written if asked_ttl == "1h" else 0}
    stop = message.get("stop_reason")
    stop_reason = stop if isinstance(stop, str) else None
    status, error = Status.SUCCEEDED, None
    if stop_reason in INCOMPLETE_STOPS:
        status = Status.INCOMPLETE
    elif stop_reason == "refusal":
        status, error = Status.ERRORED, _refusal(message.get("stop_details"))
    return TurnOutcome(
        custom_id,
        status,
        message.get("model"),
        text,
        error=error,
        stop_reason=stop_reason,
        usage=Usage(
            input_tokens=usage.get("input_tokens") or 0,
            output_tokens=usage.get("output_tokens") or 0,
            cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
            cache_creation_tokens=written,
            cache_creation_1h_tokens=creation.get("ephemeral_1h_input_tokens") or 0,
        ),
        turn_end=stop_reason,
        assistant=tuple(content),
        tool_calls=tuple(
            ToolCall(str(b.get("id")), str(b.get("name")), b.get("input") if isinstance(b.get("input"), dict) else {})
            for b in content
            if b.get("type") == "tool_use"
        ),
        server_tool_use=_server_tool_use(content, usage.get("server_tool_use")),
    )


def _refusal(details: Any) -> str:
    """The refusal as the API explains it (`stop_details`), without the model's text."""
    category = details.get("category") if isinstance(details, dict) else None
    explanation = details.get("explanation") if isinstance(details, dict) else None
    reason = "refused by the model (stop_reason refusal" + (f", category {category}" if category else "") + ")"
    return f"{reason}: {explanation}" if explanation else reason


def _server_tool_use(content: list[dict[str, Any]], counted: Any) -> dict[str, int]:
    """Server tool calls by common name: the usage's own counts where it has them (they are what is
    billed), else the `server_tool_use` blocks of the content."""
    used: dict[str, int] = {}
    for block in content:
        name = _SERVER_TOOL_NAMES.get(str(block.get("name"))) if block.get("type") == "server_tool_use" else None
        if name:
            used[name] = used.get(name, 0) + 1
    if isinstance(counted, dict):
        for key, name in (("web_search_requests", "web-search"), ("web_fetch_requests", "web-fetch")):
            if key in counted:
                used[name] = as_count(counted[key])
    return {k: v for k, v in used.items() if v}


def tool_param(tool: ToolSpec) -> dict[str, Any]:
    """One tool as the Messages API takes it: a custom tool with its schema, or a server tool's type."""
    if tool.kind == "server":
        if tool.name not in SERVER_TOOLS:
            raise ProviderError(f"server tool {tool.name!r} is not available on anthropic")
        return dict(SERVER_TOOLS[tool.name])
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": dict(tool.input_schema or {"type": "object", "properties": {}}),
    }


def conversation_messages(request: ConversationRequest, cache: dict[str, str]) -> list[dict[str, Any]]:
    """The whole conversation as Messages: the first messages, then per exchange the assistant's content
    unmodified and a user message of its tool results. After a `pause_turn` the paused content is the
    last message, as the API continues it. The newest block carries a cache breakpoint, so the next
    round reads this round's prefix from the cache."""
    messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
    for exchange in request.history:
        messages.append({"role": "assistant", "content": [dict(b) for b in exchange.assistant]})
        if exchange.results:
            messages.append({"role": "user", "content": [_tool_result(r) for r in exchange.results]})
    _mark_newest(messages, cache)
    return messages


def _tool_result(result: CallResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id, "content": result.content}
    if result.is_error:
        block["is_error"] = True
    return block


def _mark_newest(messages: list[dict[str, Any]], cache: dict[str, str]) -> None:
    for message in reversed(messages):
        content = message["content"]
        if isinstance(content, str):
            message["content"] = [{"type": "text", "text": content, "cache_control": cache}]
            return
        for i in range(len(content) - 1, -1, -1):
            if content[i].get("type") not in _THINKING_BLOCKS:
                # A copy: the request's own messages are shared with the next round's request.
                message["content"] = [*content[:i], {**content[i], "cache_control": cache}, *content[i + 1 :]]
                return
