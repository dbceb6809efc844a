"""Gemini Batch API, Files API and generateContent through the official `google-genai` SDK."""

from __future__ import annotations

import io
import json
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import httpx2
from google import genai
from google.genai import errors, types

from batch_arbiter.core.catalog import ModelCaps, base_model
from batch_arbiter.core.conversation import (
    END_TURN,
    MAX_TOKENS,
    TOOL_USE,
    CallResult,
    ConversationRequest,
    ToolCall,
    TurnOutcome,
)
from batch_arbiter.core.records import Outcome, PromptRequest, Status, Usage, as_count
from batch_arbiter.core.tools import ToolSpec
from batch_arbiter.errors import AuthError, NoSuchBatch, ProviderError, Refused
from batch_arbiter.providers.base import BatchState, BatchStatus, ProviderConfig, RunSpec, describe_error
from batch_arbiter.providers.retry import Attempt, before_answer
from batch_arbiter.providers.schemas import wire_schema

# The version every call is sent under. google-genai 3.x defaults to `v1` (GOOGLE_AI_API_DEFAULT_VERSION in
# google/genai/_api_client.py) and sends batch and file calls under the client's version too, but the Batch
# API and the Files API are documented under `v1beta` only (ai.google.dev/gemini-api/docs/batch-api,
# .../docs/api-versions lists no batch or file feature for v1).
API_VERSION = "v1beta"
# The API refuses inline batch bodies over 20 MB. The size is measured as the SDK encodes it
# (`inline_item_bytes`); the margin covers what the SDK's own conversion of each item adds.
INLINE_LIMIT_BYTES = 19 * 1024 * 1024
# The create body around the inline items, as the SDK spells it (`{"batch": {"displayName": ..., "inputConfig":
# {"requests": {"requests": [...]}}}}`), rounded up.
INLINE_ENVELOPE_BYTES = 128
# Python's mimetypes does not know `.jsonl`; without an explicit type the SDK refuses the upload.
JSONL_MIME_TYPE = "application/jsonl"
JSON_MIME_TYPE = "application/json"
# Flex answers within 1-15 minutes (best effort). It is tried first only when the time left also covers
# a standard call after a Flex call that gave up.
FLEX_LATENCY_SECONDS = 900.0
STANDARD_RESERVE_SECONDS = 300.0
# Attempts at creating one job; after an ambiguous failure the job list is asked first (creates are not
# idempotent: a retried create could leave two paid jobs).
CREATE_ATTEMPTS = 3
# Attempts of one standard-tier sync call: a fallback of many calls meets rate limits as a matter of course.
SYNC_ATTEMPTS = 7
# Statuses worth another attempt. The SDK retries nothing unless told to.
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
# Thinking budgets for the 2.5 models, which take budgets instead of levels; `max` is the model's ceiling.
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 8192, "xhigh": 16384}
MAX_THINKING_BUDGET = {"gemini-2.5-pro": 32768, "gemini-2.5-flash": 24576, "gemini-2.5-flash-lite": 24576}
THINKING_LEVELS = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "xhigh": "XHIGH", "max": "XHIGH"}

_STATES = {
    "JOB_STATE_SUCCEEDED": BatchState.ENDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": BatchState.ENDED,
    "JOB_STATE_CANCELLED": BatchState.ENDED,
    "JOB_STATE_EXPIRED": BatchState.ENDED,
    "JOB_STATE_FAILED": BatchState.FAILED,
    "JOB_STATE_CANCELLING": BatchState.CANCELING,
}
# What a request the job never answered counts as, by how the job ended.
_UNANSWERED = {
    "JOB_STATE_EXPIRED": (Status.EXPIRED, "the job expired (48 h) before it processed this request"),
    "JOB_STATE_CANCELLED": (Status.CANCELED, "canceled before the job processed it"),
    "JOB_STATE_FAILED": (Status.ERRORED, "the job failed"),
}
# google.rpc.Status codes, as per-request errors in a job carry them.
_RPC_CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}
# Finish reasons of a refused answer: final (errored, never rerun: the same prompt would be refused again).
_BLOCKED_FINISH = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)
# The server tools by their common names, as the Tool message spells them.
SERVER_TOOLS = {"web-search": "google_search", "web-fetch": "url_context", "code-execution": "code_execution"}
# A call the model gave no id (older models) gets one of these, and its response goes back without an id.
_SYNTHETIC_CALL_ID = "gemini-call-"


class _TooLarge(ProviderError):
    """The API refused a batch body as too large (inline: send a file instead)."""


class GeminiProvider:
    """The Gemini Batch API and generateContent through the `google-genai` SDK; batches go inline up to
    the inline limit, as a JSONL file above it."""

    name = "gemini"
    # Past the inline limit a batch goes up as a JSONL file, which may hold up to 2 GB; the API names
    # no request count limit, so the byte limit is the one that splits.
    max_batch_requests = 1_000_000
    max_batch_bytes = 2 * 1024 * 1024 * 1024

    def __init__(self, config: ProviderConfig, *, inline_limit_bytes: int = INLINE_LIMIT_BYTES) -> None:
        self._config = config
        self._inline_limit = inline_limit_bytes
        self._note = config.on_event or (lambda message: None)
        # Keys of the jobs this process submitted: what a cancelled or expired job left unanswered.
        self._submitted: dict[str, list[str]] = {}
        # (stage, model) pairs a modelStatus warning was given for.
        self._status_warned: set[str] = set()
        self._client = genai.Client(
            api_key=config.api_key,
            # Immune to a stray GOOGLE_GENAI_USE_VERTEXAI in the runner's environment.
            vertexai=False,
            http_options=self._http(config.request_timeout, config.max_retries + 1, base_url=config.base_url),
        )

    @staticmethod
    def _http(timeout: float, attempts: int, *, base_url: str | None = None) -> types.HttpOptions:
        # The SDK has no timeout and no retries by default; both are explicit on every call.
        return types.HttpOptions(
            base_url=base_url,
            api_version=API_VERSION,
            timeout=max(1, int(timeout * 1000)),
            retry_options=types.HttpRetryOptions(
                attempts=max(1, attempts),
                initial_delay=0.5,
                max_delay=8.0,
                jitter=0.25,
                http_status_codes=list(RETRY_STATUSES),
            ),
        )

    def _check_model_status(self, response: dict[str, Any] | None) -> None:
        """Warn once per model and stage when an answer says its model is on the way out (modelStatus, which
        google-genai's GenerateContentResponse carries as `model_status`): the run's own lifecycle table may
        not know it yet, and a retired model's answers come from another model at its price."""
        status = (response or {}).get("modelStatus")
        if not isinstance(status, dict):
            return
        stage = str(status.get("modelStage") or "")
        if stage not in ("LEGACY", "DEPRECATED", "RETIRED"):
            return
        answered_by = str((response or {}).get("modelVersion") or "?")
        key = f"{stage}:{answered_by}"
        if key in self._status_warned:
            return
        self._status_warned.add(key)
        when = f", retirement {status['retirementTime']}" if status.get("retirementTime") else ""
        message = f": {status['message']}" if status.get("message") else ""
        self._note(f"the API says the model is {stage.lower()}{when} (answered by {answered_by}){message}")

    def close(self) -> None:
        """Close the SDK client and its connections."""
        self._client.close()

    # -- parameters ------------------------------------------------------------------------------

    def thinking(self, spec: RunSpec) -> dict[str, Any] | None:
        """The thinking control for the run's effort: a budget on 2.5 models, a level on newer ones."""
        if not spec.effort:
            return None
        base = base_model(spec.model) or spec.model
        if base.startswith("gemini-2.5"):
            if spec.effort == "max":
                return {"thinking_budget": MAX_THINKING_BUDGET.get(base, THINKING_BUDGETS["xhigh"])}
            return {"thinking_budget": THINKING_BUDGETS[spec.effort]}
        return {"thinking_level": THINKING_LEVELS[spec.effort]}

    def wire_request(self, request: PromptRequest, spec: RunSpec) -> dict[str, Any]:
        """The request as the REST API (and a batch input file) spells it."""
        body: dict[str, Any] = {"contents": _contents(request)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        tools = tool_messages(request)
        if tools:
            body["tools"] = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
        generation: dict[str, Any] = {"maxOutputTokens": request.max_tokens or spec.max_tokens}
        thinking = self.thinking(spec)
        if thinking:
            generation["thinkingConfig"] = {_camel(k): v for k, v in thinking.items()}
        if request.response_schema is not None:
            generation["responseMimeType"] = JSON_MIME_TYPE
            generation["responseJsonSchema"] = wire_schema(request.response_schema)
        body["generationConfig"] = generation
        return body

    def config(self, request: PromptRequest, spec: RunSpec, **extra: Any) -> types.GenerateContentConfig:
        """The generation config of one sync call (system instruction, output limit, thinking); `extra` adds
        fields such as the service tier."""
        thinking = self.thinking(spec)
        schema = request.response_schema
        tools = tool_messages(request)
        if tools:
            # The tools run on the runner, between rounds: never inside the SDK.
            extra["tools"] = tools
            extra["automatic_function_calling"] = types.AutomaticFunctionCallingConfig(disable=True)
        return types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens or spec.max_tokens,
            thinking_config=types.ThinkingConfig(**thinking) if thinking else None,
            # On every call of the request, inline batch or sync, as in `wire_request` for a batch file.
            response_mime_type=JSON_MIME_TYPE if schema is not None else None,
            response_json_schema=wire_schema(schema) if schema is not None else None,
            **extra,
        )

    # -- discovery (free endpoints) --------------------------------------------------------------

    def model_caps(self, model: str) -> ModelCaps | None:
        """None: the Gemini API describes no effort capabilities, so the offline catalogue decides."""
        return None

    def count_tokens(self, request: PromptRequest, spec: RunSpec) -> int | None:
        """Input tokens by the free countTokens endpoint; None when it does not answer."""
        try:
            contents = _contents(request)
        except ValueError:
            return None
        if request.system:
            # countTokens on the Developer API takes no system instruction; counted as leading text.
            contents = [{"role": "user", "parts": [{"text": request.system}]}, *contents]
        try:
            counted = self._client.models.count_tokens(model=spec.model, contents=contents)
        except (errors.APIError, httpx2.HTTPError):
            return None
        return counted.total_tokens

    # -- batch -----------------------------------------------------------------------------------

    def submit(self, requests: Sequence[PromptRequest], spec: RunSpec, *, token: str | None = None) -> str:
        """Create one batch job (inline, or from an uploaded JSONL file when too large) and return its name;
        after an ambiguous failure the job list is checked before creating again."""
        display = token or f"batch-arbiter-{uuid.uuid4().hex[:16]}"
        keys = [r.custom_id for r in requests]
        with tempfile.TemporaryFile() as lines:
            size = INLINE_ENVELOPE_BYTES + len(json.dumps(display))
            for request in requests:
                try:
                    wire = self.wire_request(request, spec)
                except ValueError as exc:
                    raise ProviderError(f"request {request.custom_id}: {exc}") from None
                # The file is ours to encode (compact UTF-8); the inline body is the SDK's.
                lines.write(
                    json.dumps(
                        {"key": request.custom_id, "request": wire}, ensure_ascii=False, separators=(",", ":")
                    ).encode()
                    + b"\n"
                )
                size += inline_item_bytes(request.custom_id, wire)
            if size < self._inline_limit:
                inlined = [
                    types.InlinedRequest(
                        contents=_contents(r),
                        metadata={"key": r.custom_id},
                        config=self.config(r, spec),
                    )
                    for r in requests
                ]
                try:
                    name = self._create(spec.model, display, inlined)
                except _TooLarge:
                    self._note(f"the API refused the {size:,}-byte inline batch as too large; sent it as a JSONL file")
                else:
                    self._submitted[name] = keys
                    return name
            lines.seek(0)
            file_name = self._upload(lines, display)
        name = self._create(spec.model, display, file_name)
        self._submitted[name] = keys
        return name

    def _upload(self, lines: IO[bytes], display: str) -> str:
        try:
            uploaded = self._client.files.upload(
                # A binary temporary file; the SDK types it as IOBase, which IO[bytes] does not name.
                file=cast(io.IOBase, lines),
                config=types.UploadFileConfig(mime_type=JSONL_MIME_TYPE, display_name=f"{display}-input"),
            )
        except (errors.APIError, httpx2.HTTPError) as exc:
            raise provider_error(f"batch input upload failed: {describe(exc)}", exc) from None
        if not uploaded.name:
            raise ProviderError("batch input upload failed: the API returned no file name")
        return uploaded.name

    def _create(self, model: str, display: str, src: list[types.InlinedRequest] | str) -> str:
        # Our own attempts, one HTTP call each, so that no retry happens without the list check.
        once = self._http(self._config.request_timeout, 1)
        config = types.CreateBatchJobConfig(display_name=display, http_options=once)
        error: Exception | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            ambiguous = False
            try:
                job = self._client.batches.create(model=model, src=src, config=config)
            except errors.APIError as exc:
                if exc.code in (400, 413) and "payload size exceeds" in (exc.message or "").lower():
                    raise _TooLarge(f"batch create failed: {describe(exc)}") from None
                if exc.code not in RETRY_STATUSES:
                    raise provider_error(f"batch create failed: {describe(exc)}", exc) from None
                # 429 and 503 refuse the call; anything else may have created the job after all.
                error, ambiguous = exc, exc.code not in (429, 503)
            except (httpx2.HTTPError, ValueError) as exc:
                # A garbled answer (not JSON) may well have created the job: as ambiguous as a lost one.
                error, ambiguous = exc, True
            else:
                if not job.name:
                    raise ProviderError("batch create failed: the API returned no job name")
                return job.name
            if ambiguous:
                found = self._find_job(display)
                if found:
                    self._note(
                        f"the answer to a batch create was lost ({describe(error)}); "
                        f"found the job it created, {found}, instead of creating another"
                    )
                    return found
            if attempt < CREATE_ATTEMPTS:
                time.sleep(self._backoff(attempt))
        reason = describe(error) if error is not None else "no answer"
        raise ProviderError(f"batch create failed after {CREATE_ATTEMPTS} attempts: {reason}")

    def find_submitted(self, token: str, since: datetime, size: int) -> str | None:
        """The job whose display name is `token`: it is unique to one create."""
        del since, size
        return self._find_job(token)

    def _find_job(self, display: str) -> str | None:
        """Our job by its unique display name, among the newest ones."""
        try:
            pager = self._client.batches.list(
                config=types.ListBatchJobsConfig(page_size=50, http_options=self._http(self._config.request_timeout, 1))
            )
            return next((job.name for job in pager.page if job.display_name == display and job.name), None)
        except (errors.APIError, httpx2.HTTPError, ValueError):
            return None

    def _backoff(self, attempt: int) -> float:
        wait = 0.5 * 2.0 ** (attempt - 1)
        if self._config.deadline is not None:
            remaining = self._config.deadline - time.monotonic()
            if remaining > 0:
                wait = min(wait, remaining)
        return wait

    def _get_job(self, name: str, purpose: str) -> Any:
        try:
            return self._client.batches.get(name=name)
        except (errors.APIError, httpx2.HTTPError, ValueError) as exc:
            raise batch_error(name, purpose, exc) from None

    def status(self, batch_id: str) -> BatchStatus:
        """The job's state mapped to BatchState, with its request counts."""
        name = job_name(batch_id)
        job = self._get_job(name, "status")
        state = _state_name(job)
        mapped = _STATES.get(state, BatchState.RUNNING)
        if mapped is BatchState.RUNNING:
            return BatchStatus(name, mapped)
        # The SDK drops the job's error and batch stats; the raw body has them.
        raw = self._raw_job(name)
        stats = raw.get("metadata", {}).get("batchStats", {}) if raw else {}
        counts = {
            "requests": as_count(stats.get("requestCount")),
            "succeeded": as_count(stats.get("successfulRequestCount")),
            "errored": as_count(stats.get("failedRequestCount")),
            "pending": as_count(stats.get("pendingRequestCount")),
        }
        error = None
        if mapped is BatchState.FAILED:
            detail = raw.get("error") if raw else None
            message = detail.get("message") if isinstance(detail, dict) else None
            error = message or "the API gave no reason"
        return BatchStatus(name, mapped, counts, error)

    def _raw_job(self, name: str) -> dict[str, Any]:
        try:
            return raw_get(self._client, name)
        except (errors.APIError, httpx2.HTTPError, ValueError):
            return {}

    def cancel(self, batch_id: str) -> None:
        """Ask the API to cancel the job; what it finished stays collectable."""
        name = job_name(batch_id)
        try:
            self._client.batches.cancel(name=name)
        except (errors.APIError, httpx2.HTTPError, ValueError) as exc:
            raise batch_error(name, "cancel", exc) from None

    def results(self, batch_id: str) -> Iterator[Outcome]:
        """The ended job's answers, inline or from its results file; requests a cancelled or expired job left
        unanswered come back canceled or expired."""
        name = job_name(batch_id)
        job = self._get_job(name, "results")
        state = _state_name(job)
        answered: set[str] = set()
        dest = job.dest
        if dest is not None and dest.inlined_responses is not None:
            for item in dest.inlined_responses:
                key = (item.metadata or {}).get("key")
                if key is None:
                    continue
                answered.add(key)
                response = item.response.model_dump(mode="json", by_alias=True) if item.response else None
                error = item.error.model_dump(mode="json", by_alias=True) if item.error else None
                self._check_model_status(response)
                yield _outcome(key, response, error)
        elif dest is not None and dest.file_name:
            for key, response, error in self._download(dest.file_name):
                answered.add(key)
                self._check_model_status(response)
                yield _outcome(key, response, error)
        if state in _UNANSWERED:
            status, note = _UNANSWERED[state]
            if status is Status.ERRORED:
                detail = self._raw_job(name).get("error")
                reason = detail.get("message") if isinstance(detail, dict) else None
                note = f"the job failed: {reason or 'the API gave no reason'}"
            for key in self._submitted.get(name, []):
                if key not in answered:
                    yield Outcome(key, status, error=note)

    def _download(self, file_name: str) -> Iterator[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "results.jsonl"
            try:
                # Streamed to disk: a 100k-line result file never sits in memory whole.
                self._client.files.download(file=file_name, destination=str(path))
            except errors.APIError as exc:
                # A results file that is gone or refused will not come back on a retry.
                message = f"batch results failed: {describe(exc)}"
                raise (Refused(message) if exc.code == 404 else provider_error(message, exc)) from None
            except httpx2.HTTPError as exc:
                raise ProviderError(f"batch results download broke off: {type(exc).__name__}") from None
            with path.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        raise ProviderError(f"batch results line {number} is not JSON") from None
                    key = entry.get("key") if isinstance(entry, dict) else None
                    if not isinstance(key, str):
                        continue
                    response = entry.get("response")
                    # The docs call it a status object; parse either name.
                    error = entry.get("error") or entry.get("status")
                    yield (
                        key,
                        response if isinstance(response, dict) else None,
                        error if isinstance(error, dict) else None,
                    )

    # -- sync ------------------------------------------------------------------------------------

    def run_sync(self, request: PromptRequest, spec: RunSpec, *, deadline_remaining: float | None = None) -> Outcome:
        """One streamed generateContent call: on the half-price Flex tier first when `deadline_remaining`
        leaves room, then the standard tier, retried only while no answer has started; a failure becomes an
        errored Outcome, but a refused key raises AuthError."""
        try:
            contents = _contents(request)
        except ValueError as exc:
            return Outcome(request.custom_id, Status.ERRORED, model=spec.model, error=str(exc))
        flex_error = None
        if deadline_remaining is not None and deadline_remaining >= FLEX_LATENCY_SECONDS + STANDARD_RESERVE_SECONDS:
            # Flex sheds load instead of queueing it: one attempt, then the standard tier.
            flex = self._http(FLEX_LATENCY_SECONDS, 1)
            config = self.config(request, spec, service_tier=types.ServiceTier.FLEX, http_options=flex)
            try:
                response = self._stream(spec.model, contents, config, attempts=1)
                return self._sync_outcome(request, spec, response, "flex")
            except (errors.APIError, httpx2.HTTPError, ValueError) as exc:
                if rejected_key(exc):
                    raise AuthError(f"sync call failed: {describe(exc)}") from None
                flex_error = describe(exc)
        # One HTTP attempt per try: the SDK would also retry timeouts, and a call that timed out while
        # generating may be billed again on every retry.
        standard = self._http(self._config.sync_timeout, 1)
        attempts = max(SYNC_ATTEMPTS, self._config.max_retries + 1)
        try:
            response = self._stream(spec.model, contents, self.config(request, spec, http_options=standard), attempts)
        except (errors.APIError, httpx2.HTTPError, ValueError) as exc:
            if rejected_key(exc):
                raise AuthError(f"sync call failed: {describe(exc)}") from None
            error = describe(exc) + (f" (Flex tier before: {flex_error})" if flex_error else "")
            return Outcome(request.custom_id, Status.ERRORED, model=spec.model, error=error, tier="standard")
        return self._sync_outcome(request, spec, response, "standard")

    def _stream(
        self, model: str, contents: list[dict[str, Any]], config: types.GenerateContentConfig, attempts: int
    ) -> dict[str, Any]:
        """generateContentStream, its chunks merged into one response (REST field names); retried only
        while no chunk has arrived."""

        def once(attempt: Attempt) -> dict[str, Any]:
            chunks: list[dict[str, Any]] = []
            for chunk in self._client.models.generate_content_stream(model=model, contents=contents, config=config):
                attempt.started = True  # the model is answering: from here on the call may be billed
                chunks.append(chunk.model_dump(mode="json", by_alias=True, exclude_none=True))
            return merge_chunks(chunks)

        return before_answer(once, retryable=_refused_call, wait=lambda _, n: self._backoff(n), attempts=attempts)

    def _sync_outcome(self, request: PromptRequest, spec: RunSpec, response: dict[str, Any], tier: str) -> Outcome:
        self._check_model_status(response)
        outcome = _outcome(request.custom_id, response, None, tier)
        if outcome.model is None:
            outcome.model = spec.model
        return outcome


def merge_chunks(chunks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A streamed answer as one GenerateContentResponse: every chunk's parts in order, the last finish
    reason, usage and model version given, and any prompt feedback."""
    merged: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    grounding: dict[str, Any] = {}
    finish = None
    for chunk in chunks:
        for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback", "modelStatus"):
            if chunk.get(key) is not None:
                merged[key] = chunk[key]
        candidates = chunk.get("candidates") or []
        if candidates:
            parts.extend((candidates[0].get("content") or {}).get("parts") or [])
            finish = candidates[0].get("finishReason") or finish
            # What the server tools did (searches, fetched URLs): counted for their fees.
            for key in ("groundingMetadata", "urlContextMetadata"):
                if candidates[0].get(key) is not None:
                    grounding[key] = candidates[0][key]
    if parts or finish is not None:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, **grounding}
        if finish is not None:
            candidate["finishReason"] = finish
        merged["candidates"] = [candidate]
    return merged


def _refused_call(exc: BaseException) -> bool:
    """A call the API turned away before answering (429, 500, 502, 503) or a connection that never opened;
    not a timeout (the request may be generating) nor a 504."""
    if isinstance(exc, errors.APIError):
        return exc.code in (429, 500, 502, 503)
    return isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout))


def inline_item_bytes(key: str, wire: dict[str, Any]) -> int:
    """The bytes one inline item adds to the create body as the SDK sends it: `json.dumps` with its defaults
    (google/genai/_api_client.py, `_request`: `json.dumps(http_request.data)`), so every non-ASCII character is
    a 6-byte `\\uXXXX` escape (12 for one outside the BMP) and separators carry a space. CJK text is about
    twice its UTF-8 size there; measuring compact UTF-8 would send a batch the API refuses as too large."""
    return len(json.dumps({"request": wire, "metadata": {"key": key}})) + len(", ")


def raw_get(client: genai.Client, path: str) -> dict[str, Any]:
    """The JSON body of a GET on `path` (e.g. `batches/X`) as the API sent it, through the client's auth,
    base URL, version and retries.

    The one use of the SDK's private `_api_client`: its BatchJob drops the job's `error` and `batchStats`
    (`_BatchJob_from_mldev` in google/genai/batches.py) and no public call returns the raw body.
    tests/contract/test_gemini.py holds this to the SDK, so an SDK that renames it fails there first."""
    response = client._api_client.request("get", path, {})
    body = json.loads(response.body or "{}")
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    return body


def job_name(batch_id: str) -> str:
    """The full `batches/...` name the SDK requires; a bare id is accepted as well."""
    return batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"


def rejected_key(exc: BaseException) -> bool:
    """Whether the API refused the credentials: no other call with the same key can succeed."""
    if not isinstance(exc, errors.APIError):
        return False
    if exc.code in (401, 403) or exc.status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return True
    # The Gemini API answers a wrong key with 400 INVALID_ARGUMENT and this wording.
    return exc.code == 400 and "api key not valid" in (exc.message or "").lower()


def batch_error(name: str, purpose: str, exc: Exception) -> ProviderError:
    """A failed call on an existing job. No key, permission or job name that the API refused will work on
    a retry or a fallback: those are fatal. The rest (a garbled answer among them) may pass."""
    if isinstance(exc, errors.APIError) and exc.code == 404:
        return NoSuchBatch(name, f"batch {purpose}: {describe(exc)}")
    return provider_error(f"batch {purpose} failed: {describe(exc)}", exc)


def provider_error(message: str, exc: BaseException) -> ProviderError:
    """`message` as an AuthError when the API refused the key, else as a ProviderError the run may pass."""
    return AuthError(message) if rejected_key(exc) else ProviderError(message)


def describe(exc: BaseException | None) -> str:
    """A short, key-free description of an SDK or transport error."""
    http = None
    if isinstance(exc, errors.APIError):
        http = (exc.code, exc.status or type(exc).__name__, exc.message or "")
    return describe_error(
        exc,
        http,
        timed_out=isinstance(exc, httpx2.TimeoutException),
        connection=isinstance(exc, httpx2.HTTPError),
    )


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _contents(request: PromptRequest) -> list[dict[str, Any]]:
    """The common role/content messages as Gemini contents (assistant turns are `model` turns)."""
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        content = message["content"]
        if isinstance(content, str):
            parts = [{"text": content}]
        else:
            parts = []
            for block in content:
                if block.get("type") != "text" or not isinstance(block.get("text"), str):
                    raise ValueError(f"content blocks of type {block.get('type')!r} are not supported on gemini")
                parts.append({"text": block["text"]})
        if not parts:
            raise ValueError("a message without text cannot be sent to gemini")
        contents.append({"role": "model" if message["role"] == "assistant" else "user", "parts": parts})
    if isinstance(request, ConversationRequest):
        for exchange in request.history:
            # The model's parts exactly as they came, thought signatures included: Gemini 3 refuses a
            # function call replayed without its signature.
            contents.append({"role": "model", "parts": [dict(p) for p in exchange.assistant]})
            if exchange.results:
                contents.append({"role": "user", "parts": [_function_response(r) for r in exchange.results]})
    return contents


def _function_response(result: CallResult) -> dict[str, Any]:
    response: dict[str, Any] = {
        "name": result.name,
        "response": {"error" if result.is_error else "output": result.content},
    }
    if not result.call_id.startswith(_SYNTHETIC_CALL_ID):
        response["id"] = result.call_id
    return {"functionResponse": response}


def tool_messages(request: PromptRequest) -> list[types.Tool]:
    """A conversation's tools as Gemini Tool messages: one of function declarations (the client tools),
    then one per server tool."""
    if not isinstance(request, ConversationRequest) or not request.tools:
        return []
    tools: list[types.Tool] = []
    declared = [
        types.FunctionDeclaration(
            name=t.name,
            description=t.description,
            parameters_json_schema=dict(t.input_schema or {"type": "object", "properties": {}}),
        )
        for t in request.specs
        if t.kind != "server"
    ]
    if declared:
        tools.append(types.Tool(function_declarations=declared))
    for tool in request.specs:
        if tool.kind == "server":
            tools.append(_server_tool(tool))
    return tools


def _server_tool(tool: ToolSpec) -> types.Tool:
    kind = SERVER_TOOLS.get(tool.name)
    if kind == "google_search":
        return types.Tool(google_search=types.GoogleSearch())
    if kind == "url_context":
        return types.Tool(url_context=types.UrlContext())
    if kind == "code_execution":
        return types.Tool(code_execution=types.ToolCodeExecution())
    raise ProviderError(f"server tool {tool.name!r} is not available on gemini")


def _state_name(job: types.BatchJob) -> str:
    state = job.state
    return str(state.value) if state is not None else "JOB_STATE_UNSPECIFIED"


def _outcome(key: str, response: dict[str, Any] | None, error: dict[str, Any] | None, tier: str = "batch") -> Outcome:
    if error is not None or response is None:
        detail = error or {}
        code = detail.get("code")
        status = detail.get("status") or _RPC_CODES.get(code if isinstance(code, int) else -1) or f"code {code}"
        return Outcome(key, Status.ERRORED, error=f"{status}: {detail.get('message') or 'no response'}", tier=tier)
    usage = _usage(response.get("usageMetadata") or {})
    model = response.get("modelVersion") or None
    candidates = response.get("candidates") or []
    if not candidates:
        feedback = response.get("promptFeedback") or {}
        blocked = feedback.get("blockReason")
        reason = blocked if isinstance(blocked, str) else None
        blocked_why = f"prompt blocked: {reason or 'no candidates'}"
        return Outcome(key, Status.ERRORED, model, usage=usage, error=blocked_why, tier=tier, stop_reason=reason)
    first = candidates[0]
    parts = (first.get("content") or {}).get("parts") or []
    text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))
    finish = first.get("finishReason")
    stop_reason = finish if isinstance(finish, str) else None
    if stop_reason in _BLOCKED_FINISH:
        # Refused: any text so far is kept in the line, but the request has no usable answer.
        blocked = f"response blocked: {stop_reason}"
        return Outcome(key, Status.ERRORED, model, text or None, usage, blocked, tier=tier, stop_reason=stop_reason)
    status = Status.INCOMPLETE if stop_reason == "MAX_TOKENS" else Status.SUCCEEDED
    # The SDK's dump names every unset field; the parts go back to the API later, so only what is set.
    kept = tuple(_without_nulls(p) for p in parts if isinstance(p, dict))
    calls = tuple(
        _tool_call(p["functionCall"], i) for i, p in enumerate(kept) if isinstance(p.get("functionCall"), dict)
    )
    # A turn that calls functions waits for their results, whatever the finish reason says (STOP).
    turn_end = TOOL_USE if calls else (MAX_TOKENS if status is Status.INCOMPLETE else END_TURN)
    return TurnOutcome(
        key,
        status,
        model,
        text,
        usage,
        tier=tier,
        stop_reason=stop_reason,
        turn_end=turn_end,
        assistant=kept,
        tool_calls=calls,
        server_tool_use=_server_tool_use(first, kept),
    )


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _tool_call(call: dict[str, Any], index: int) -> ToolCall:
    args = call.get("args")
    call_id = call.get("id") or f"{_SYNTHETIC_CALL_ID}{index}"
    return ToolCall(str(call_id), str(call.get("name")), args if isinstance(args, dict) else {})


def _server_tool_use(candidate: dict[str, Any], parts: tuple[dict[str, Any], ...]) -> dict[str, int]:
    """Server tools the turn ran: search queries (what grounding bills), URLs fetched, code runs."""
    grounding = candidate.get("groundingMetadata") or {}
    urls = (candidate.get("urlContextMetadata") or {}).get("urlMetadata") or []
    used = {
        "web-search": len(grounding.get("webSearchQueries") or []),
        "web-fetch": len(urls) if isinstance(urls, list) else 0,
        "code-execution": sum(1 for p in parts if p.get("executableCode")),
    }
    return {k: v for k, v in used.items() if v}


def _usage(meta: dict[str, Any]) -> Usage:
    prompt = as_count(meta.get("promptTokenCount"))
    cached = as_count(meta.get("cachedContentTokenCount"))
    tool_prompt = as_count(meta.get("toolUsePromptTokenCount"))
    return Usage(
        # promptTokenCount includes the cached part; the common name counts uncached input only.
        input_tokens=max(prompt - cached, 0) + tool_prompt,
        # Thinking is billed as output.
        output_tokens=as_count(meta.get("candidatesTokenCount")) + as_count(meta.get("thoughtsTokenCount")),
        cache_read_tokens=cached,
    )
