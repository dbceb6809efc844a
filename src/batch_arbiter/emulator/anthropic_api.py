"""The Anthropic Messages + Message Batches API, as anthropic SDK 2.12.0 speaks it."""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .agent_script import SLOW_FACTOR
from .anthropic_catalog import MODELS, find_model
from .anthropic_messages import (
    API_VERSION,
    NO_CACHE,
    CacheUse,
    PromptCache,
    batch_marker,
    build_message,
    check_model,
    has_sync_error_marker,
    is_slow,
    sse_events,
    total_input_tokens,
    validate_params,
)
from .config import OUTCOMES, EmulatorConfig
from .routing import HttpError, Request, Response, Route, random_id

MAX_BATCH_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_EXPIRY = timedelta(hours=24)
# Results are streamed in pieces of about this size: big enough to keep syscalls few, small enough that
# a 100k-line file never sits in memory whole.
_CHUNK_BYTES = 64 * 1024

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit (emulated)",
    529: "Overloaded (emulated)",
}


def error_type_for(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _derived_id(prefix: str, *parts: str) -> str:
    # Deterministic ids keep repeated downloads of one batch's results byte-identical.
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{prefix}01{digest[:22]}"


@dataclass(slots=True)
class BatchItem:
    custom_id: str
    params: dict[str, Any]
    # What the item will turn into when processing finishes: one of OUTCOMES.
    planned: str
    error_type: str = "invalid_request_error"
    error_message: str = ""
    # Set once the batch ends; "hang" never survives to here.
    final: str | None = None
    cache: CacheUse = NO_CACHE


@dataclass
class Batch:
    """A batch as the emulator tracks it. Status fields are brought up to date on every access."""

    id: str
    seq: int
    items: list[BatchItem]
    created_at: datetime
    created_mono: float
    processing_seconds: float
    processing_status: str = "in_progress"
    # Monotonic time at which the batch ends; None while it has items that never finish by themselves.
    end_mono: float | None = None
    cancel_mono: float | None = None
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    request_counts: dict[str, int] = field(default_factory=dict)

    def wall(self, mono: float) -> datetime:
        return self.created_at + timedelta(seconds=mono - self.created_mono)

    def results(self) -> dict[str, str]:
        """custom_id -> final result type, for assertions (empty until the batch has ended)."""
        return {item.custom_id: item.final for item in self.items if item.final is not None}


_T = TypeVar("_T")


class AnthropicApi:
    def __init__(self, config: Callable[[], EmulatorConfig]) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._batches: dict[str, Batch] = {}
        self._seq = itertools.count()
        self.prompt_cache = PromptCache()

    # --- ApiModule ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        batch = r"/v1/messages/batches/(?P<batch_id>[^/]+)"
        return [
            Route.build("POST", r"/v1/messages", "messages", self._messages, self),
            Route.build("POST", r"/v1/messages/count_tokens", "count_tokens", self._count_tokens, self),
            Route.build("POST", r"/v1/messages/batches", "create", self._create, self),
            Route.build("GET", r"/v1/messages/batches", "list", self._list, self),
            Route.build("GET", batch, "retrieve", self._retrieve, self),
            Route.build("DELETE", batch, "delete", self._delete, self),
            Route.build("POST", batch + "/cancel", "cancel", self._cancel, self),
            Route.build("GET", batch + "/results", "results", self._results, self),
            Route.build("GET", r"/v1/models", "models", self._list_models, self),
            Route.build("GET", r"/v1/models/(?P<model_id>[^/]+)", "models", self._get_model, self),
        ]

    def authorize(self, request: Request) -> None:
        key = request.header("x-api-key")
        if not key:
            scheme, _, token = (request.header("authorization") or "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
        if not key:
            raise HttpError(401, "x-api-key header or Authorization: Bearer <key> is required", "authentication_error")
        expected = self._config().api_key
        if expected is not None and key != expected:
            raise HttpError(401, "invalid x-api-key", "authentication_error")
        version = request.header("anthropic-version")
        if version is None:
            raise HttpError(400, "anthropic-version: header is required", "invalid_request_error")
        if version != API_VERSION:
            raise HttpError(
                400,
                f"anthropic-version: {version!r} is not supported by the emulator (expected {API_VERSION!r})",
                "invalid_request_error",
            )

    def error_response(self, request: Request, error: HttpError) -> Response:
        error_type = error.error_type or error_type_for(error.status)
        message = error.message or _ERROR_MESSAGES.get(error.status, f"Emulated {error_type}")
        body = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request.request_id,
        }
        return self._json(request, body, status=error.status, headers=error.headers)

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _json(request: Request, body: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return Response(
            status=status,
            body=json.dumps(body).encode(),
            headers=[("request-id", request.request_id), *headers],
        )

    def _lenient(self, request: Request) -> bool:
        # Beta requests may carry params this emulator does not model; let them through unchecked.
        return request.header("anthropic-beta") is not None

    def _get_batch(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise HttpError(404, f"message batch {batch_id!r} not found", "not_found_error")
        self._advance(batch, time.monotonic())
        return batch

    def batch(self, batch_id: str) -> Batch:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise KeyError(batch_id)
            self._advance(batch, time.monotonic())
            return batch

    def batch_ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    # --- sync messages --------------------------------------------------------------------------

    def _messages(self, request: Request, _: dict[str, str]) -> Response:
        params = validate_params(request.json(), lenient_keys=self._lenient(request))
        check_model(params)
        self._check_live(params, self._config())
        if has_sync_error_marker(params):
            raise HttpError(400, "emulated invalid request ([[emulator:sync-errored]] marker)", "invalid_request_error")
        cache = self.prompt_cache.account(params, honour_1h=self._config().anthropic_cache_1h)
        message = build_message(params, message_id=f"msg_01{random_id(22)}", cache=cache, service_tier="standard")
        if params.get("stream"):
            # Server-sent events, one chunk per event, as the real API streams them.
            return Response(
                status=200,
                chunks=sse_events(message),
                content_type="text/event-stream; charset=utf-8",
                headers=[("request-id", request.request_id), ("cache-control", "no-cache")],
            )
        return self._json(request, message)

    def _count_tokens(self, request: Request, _: dict[str, str]) -> Response:
        params = validate_params(request.json(), lenient_keys=self._lenient(request), count_tokens=True)
        if find_model(params["model"]) is None:
            raise HttpError(404, f"model: {params['model']}", "not_found_error")
        return self._json(request, {"input_tokens": total_input_tokens(params)})

    # --- batches --------------------------------------------------------------------------------

    def _create(self, request: Request, _: dict[str, str]) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "body: Input should be an object", "invalid_request_error")
        extra = set(body) - {"requests"}
        if extra:
            raise HttpError(400, f"{sorted(extra)[0]}: Extra inputs are not permitted", "invalid_request_error")
        requests = body.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_BATCH_REQUESTS:
            raise HttpError(
                400,
                f"requests: must be a list of 1 to {MAX_BATCH_REQUESTS} requests",
                "invalid_request_error",
            )
        config = self._config()
        lenient = self._lenient(request)
        seen: set[str] = set()
        items: list[BatchItem] = []
        for index, entry in enumerate(requests):
            where = f"requests.{index}"
            if not isinstance(entry, dict) or set(entry) != {"custom_id", "params"}:
                raise HttpError(
                    400, f"{where}: Input should have exactly custom_id and params", "invalid_request_error"
                )
            custom_id = entry["custom_id"]
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                raise HttpError(
                    400,
                    f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
                    "invalid_request_error",
                )
            if custom_id in seen:
                raise HttpError(
                    400,
                    f"{where}.custom_id: duplicate custom_id {custom_id!r} in batch",
                    "invalid_request_error",
                )
            seen.add(custom_id)
            params = validate_params(entry["params"], prefix=f"{where}.params.", batch=True, lenient_keys=lenient)
            items.append(self._plan(custom_id, params, config))

        # A turn an agent script marks `slow` holds its whole batch open longer.
        slow = SLOW_FACTOR if any(is_slow(i.params) for i in items) else 1
        now_mono = time.monotonic()
        batch = Batch(
            id=f"msgbatch_01{random_id(22)}",
            seq=next(self._seq),
            items=items,
            created_at=datetime.now(UTC),
            created_mono=now_mono,
            processing_seconds=config.processing_seconds * slow,
        )
        if all(item.planned != "hang" for item in items):
            batch.end_mono = now_mono + batch.processing_seconds
        # Not advanced here: like the real API, create always answers `in_progress`, even when
        # processing_seconds is 0 and the very next retrieve will find the batch ended.
        batch.request_counts = self._counts(batch)
        with self._lock:
            self._batches[batch.id] = batch
            return self._json(request, self._render(batch, request.base_url))

    @staticmethod
    def _plan(custom_id: str, params: dict[str, Any], config: EmulatorConfig) -> BatchItem:
        # Model problems are found only when the item is processed, as with the real API: the batch is
        # accepted and the item comes back errored.
        try:
            spec = check_model(params)
            AnthropicApi._check_live(params, config)
            if spec.id in config.no_batch_models:
                raise HttpError(
                    400, f"model: {spec.id} does not support the Message Batches API", "invalid_request_error"
                )
        except HttpError as exc:
            return BatchItem(custom_id, params, "errored", exc.error_type or "invalid_request_error", exc.message)
        outcome = batch_marker(params)
        if outcome is None:
            outcome = next(
                (o for glob, o in config.outcomes.items() if fnmatch.fnmatchcase(custom_id, glob)),
                config.default_outcome,
            )
        if outcome not in OUTCOMES:
            raise HttpError(500, f"emulator misconfigured: unknown outcome {outcome!r}", "api_error")
        return BatchItem(custom_id, params, outcome, error_message=f"emulated error for {custom_id}")

    def _advance(self, batch: Batch, now: float) -> None:
        """Move the batch along to where wall time says it is. Caller holds the lock."""
        if batch.processing_status == "ended":
            return
        if batch.end_mono is not None and now >= batch.end_mono:
            self._finish(batch)
        elif batch.cancel_mono is not None:
            batch.processing_status = "canceling"
        batch.request_counts = self._counts(batch)

    def _finish(self, batch: Batch) -> None:
        assert batch.end_mono is not None
        # Every item finishes together at created + processing_seconds; a cancel before that point
        # cancels them all, one after it only cancels the items that never finish (hang).
        done_mono = batch.created_mono + batch.processing_seconds
        canceled_early = batch.cancel_mono is not None and batch.cancel_mono < done_mono
        for item in batch.items:
            if item.planned == "hang" or canceled_early:
                item.final = "canceled"
            elif item.planned == "missing":
                # Counted as succeeded, but its line never appears in the results file.
                item.final = "succeeded"
            else:
                item.final = item.planned
        # Cache writes and reads are decided once, in request order, so every download agrees.
        for item in batch.items:
            if item.final == "succeeded":
                item.cache = self.prompt_cache.account(item.params, honour_1h=self._config().anthropic_cache_1h)
        batch.processing_status = "ended"
        batch.ended_at = batch.wall(batch.end_mono)

    @staticmethod
    def _counts(batch: Batch) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.processing_status != "ended":
            counts["processing"] = len(batch.items)
            return counts
        for item in batch.items:
            assert item.final is not None
            counts[item.final] += 1
        return counts

    @staticmethod
    def _render(batch: Batch, base_url: str) -> dict[str, Any]:
        ended = batch.processing_status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.processing_status,
            "request_counts": dict(batch.request_counts),
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(batch.created_at + _EXPIRY),
            "ended_at": rfc3339(batch.ended_at),
            "cancel_initiated_at": rfc3339(batch.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def _retrieve(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            return self._json(request, self._render(self._get_batch(path["batch_id"]), request.base_url))

    def _list(self, request: Request, _: dict[str, str]) -> Response:
        with self._lock:
            now = time.monotonic()
            batches = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
            for batch in batches:
                self._advance(batch, now)
            page = self._page(request, batches, [b.id for b in batches], default_limit=20)
            return self._json(request, self._page_body(page, [self._render(b, request.base_url) for b in page[0]]))

    def _cancel(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            batch = self._get_batch(path["batch_id"])
            if batch.processing_status == "ended":
                raise HttpError(
                    400,
                    f"message batch {batch.id} has already ended and cannot be canceled",
                    "invalid_request_error",
                )
            if batch.cancel_mono is None:
                now = time.monotonic()
                batch.cancel_mono = now
                batch.cancel_initiated_at = batch.wall(now)
                batch.end_mono = now + self._config().cancel_seconds
                # Not advanced here: the cancel call itself always reports `canceling`, as the real API does.
                batch.processing_status = "canceling"
            return self._json(request, self._render(batch, request.base_url))

    def _delete(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            batch = self._get_batch(path["batch_id"])
            if batch.processing_status != "ended":
                raise HttpError(
                    400,
                    f"message batch {batch.id} cannot be deleted while processing; cancel it first",
                    "invalid_request_error",
                )
            del self._batches[batch.id]
            return self._json(request, {"id": batch.id, "type": "message_batch_deleted"})

    def _results(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            batch = self._get_batch(path["batch_id"])
            if batch.processing_status != "ended":
                raise HttpError(400, f"message batch {batch.id} has not finished processing", "invalid_request_error")
            items = [item for item in batch.items if item.planned != "missing" or item.final != "succeeded"]
            # Fault injection: answers for requests the batch never held (as a server mix-up would give).
            items += [
                replace(batch.items[0], custom_id=f"never_submitted_{n}", final="succeeded")
                for n in range(request.foreign_results if batch.items else 0)
            ]
        # A fixed shuffle per batch: callers must match on custom_id, and every download is identical.
        order = list(range(len(items)))
        random.Random(batch.id).shuffle(order)
        return Response(
            status=200,
            chunks=_result_chunks(batch.id, items, order),
            content_type="application/binary",
            headers=[("request-id", request.request_id)],
        )

    # --- models ---------------------------------------------------------------------------------

    def _get_model(self, request: Request, path: dict[str, str]) -> Response:
        spec = find_model(path["model_id"])
        if spec is None:
            raise HttpError(404, f"model: {path['model_id']}", "not_found_error")
        config = self._config()
        info = spec.info(config.model_lifecycle.get(spec.id), batch=spec.id not in config.no_batch_models)
        return self._json(request, info)

    def _list_models(self, request: Request, _: dict[str, str]) -> Response:
        page = self._page(request, list(MODELS), [m.id for m in MODELS], default_limit=20)
        config = self._config()
        infos = [m.info(config.model_lifecycle.get(m.id), batch=m.id not in config.no_batch_models) for m in page[0]]
        return self._json(request, self._page_body(page, infos))

    @staticmethod
    def _check_live(params: dict[str, Any], config: EmulatorConfig) -> None:
        """A retired model stays in the catalogue, but inference requests naming it fail."""
        spec = find_model(params["model"])
        if spec is not None and spec.info(config.model_lifecycle.get(spec.id))["lifecycle"] == "retired":
            raise HttpError(404, f"model: {params['model']} has been retired", "not_found_error")

    # --- pagination -----------------------------------------------------------------------------

    @staticmethod
    def _page(
        request: Request, items: list[_T], ids: list[str], default_limit: int
    ) -> tuple[list[_T], bool, list[str]]:
        """Cursor pagination as the SDK's SyncPage follows it: after_id walks on, before_id walks back."""
        raw_limit = request.query_value("limit")
        try:
            limit = default_limit if raw_limit is None else int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            raise HttpError(400, "limit: Input should be an integer between 1 and 1000", "invalid_request_error")
        after, before = request.query_value("after_id"), request.query_value("before_id")
        if after and before:
            raise HttpError(400, "after_id and before_id cannot both be set", "invalid_request_error")

        def position(cursor: str, name: str) -> int:
            try:
                return ids.index(cursor)
            except ValueError:
                raise HttpError(400, f"{name}: unknown id {cursor!r}", "invalid_request_error") from None

        if before:
            end = position(before, "before_id")
            start = max(0, end - limit)
            return items[start:end], start > 0, ids[start:end]
        start = position(after, "after_id") + 1 if after else 0
        end = start + limit
        return items[start:end], end < len(items), ids[start:end]

    @staticmethod
    def _page_body(page: tuple[list[Any], bool, list[str]], data: list[dict[str, Any]]) -> dict[str, Any]:
        _, has_more, ids = page
        return {
            "data": data,
            "has_more": has_more,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }


def _result_line(batch_id: str, item: BatchItem) -> dict[str, Any]:
    result: dict[str, Any]
    if item.final == "succeeded":
        message = build_message(
            item.params,
            message_id=_derived_id("msg_", batch_id, item.custom_id),
            cache=item.cache,
            service_tier="batch",
            batch=True,
        )
        result = {"type": "succeeded", "message": message}
    elif item.final == "errored":
        result = {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": item.error_type, "message": item.error_message},
                "request_id": _derived_id("req_", batch_id, item.custom_id),
            },
        }
    else:
        result = {"type": item.final}
    return {"custom_id": item.custom_id, "result": result}


def _result_chunks(batch_id: str, items: list[BatchItem], order: list[int]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for index in order:
        line = json.dumps(_result_line(batch_id, items[index]), separators=(",", ":")) + "\n"
        buffer.append(line)
        size += len(line)
        if size >= _CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()
