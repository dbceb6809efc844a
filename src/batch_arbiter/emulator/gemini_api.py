"""The Gemini Developer API (generateContent, countTokens, Batch API, Files), as google-genai 3.4.0 calls it.

generateContent and countTokens are served under `v1` and `v1beta`; the Batch API and the Files API under
`v1beta` only, as the real API documents them (ai.google.dev/gemini-api/docs/api-versions lists no batch or
file feature for `v1`), so a client left on the SDK's default `v1` fails here as it would there. Jobs move like the
Anthropic batches of this emulator: every item finishes `processing_seconds` after creation, `hang` items
never do, and a cancel ends the job `cancel_seconds` later, keeping what had finished.

Per-item outcomes map onto the Gemini job as follows: `errored` is an error entry inside a succeeded job;
`expired` and `canceled` items get no entry and end the job EXPIRED or CANCELLED. The real API returns no
output at all for an expired job; this emulator keeps the finished items' output so that a client's
handling of both cases can be tested (a client must treat a missing entry as unfinished either way).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .agent_script import SLOW_FACTOR
from .anthropic_api import rfc3339
from .config import OUTCOMES, EmulatorConfig
from .gemini_models import (
    FLEX_UNAVAILABLE_MARKER,
    JOB_FAILED_MARKER,
    GeminiModel,
    ImplicitCache,
    batch_marker,
    build_response,
    check_thinking,
    derived_id,
    find_model,
    has_marker,
    has_sync_error_marker,
    invalid,
    is_slow,
    prompt_tokens,
    status_name,
    stream_chunks,
    validate_request,
)
from .routing import HttpError, Request, Response, Route, random_id

_VERSION = r"/(?P<version>v1|v1beta)"
_BETA = r"/(?P<version>v1beta)"
_MODEL = r"/models/(?P<model>[^/:]+)"
_BATCH = r"/batches/(?P<batch_id>[^/:]+)"
_FILE = r"/files/(?P<file_id>[^/:]+)"
_CHUNK_BYTES = 64 * 1024
_FILE_TTL = timedelta(hours=48)
_TERMINAL = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
# Job and per-request errors are google.rpc.Status objects, whose codes are gRPC codes, not HTTP ones.
_RPC_INVALID_ARGUMENT = 3
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


@dataclass(slots=True)
class GeminiItem:
    key: str | None
    metadata: dict[str, Any] | None
    request: dict[str, Any]
    # One of OUTCOMES; "errored" carries `error`.
    planned: str
    error: dict[str, Any] | None = None
    final: str | None = None
    cached: int = 0


@dataclass
class GeminiJob:
    """A batch job as the emulator tracks it; brought up to date on every access."""

    id: str
    seq: int
    model: GeminiModel
    display_name: str
    items: list[GeminiItem]
    created_at: datetime
    created_mono: float
    processing_seconds: float
    input_file: str | None = None
    job_error: str | None = None
    state: str = "BATCH_STATE_PENDING"
    end_mono: float | None = None
    cancel_mono: float | None = None
    updated_at: datetime | None = None
    ended_at: datetime | None = None
    output_file: str | None = None

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def wall(self, mono: float) -> datetime:
        return self.created_at + timedelta(seconds=mono - self.created_mono)

    def results(self) -> dict[str, str]:
        """key -> final outcome, for assertions (empty until the job has ended)."""
        return {item.key or "": item.final for item in self.items if item.final is not None}


@dataclass
class StoredFile:
    id: str
    display_name: str
    mime_type: str
    created_at: datetime
    data: bytes = b""
    # Set for a job's output file, whose bytes are produced on download.
    job_id: str | None = None

    @property
    def name(self) -> str:
        return f"files/{self.id}"


@dataclass
class _Upload:
    mime_type: str
    size: int
    display_name: str
    name: str | None
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class GeminiApi:
    def __init__(self, config: Callable[[], EmulatorConfig]) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._jobs: dict[str, GeminiJob] = {}
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, _Upload] = {}
        self._seq = itertools.count()
        self.implicit_cache = ImplicitCache()

    # --- ApiModule ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route.build("POST", _VERSION + _MODEL + ":generateContent", "gemini_generate", self._generate, self),
            # v1beta only here: under v1 the path is the Anthropic emulator's models route.
            Route.build("GET", _BETA + _MODEL, "gemini_model", self._model_info, self),
            # Streamed and whole answers count as one kind of call (sync generation) for faults and assertions.
            Route.build("POST", _VERSION + _MODEL + ":streamGenerateContent", "gemini_generate", self._stream, self),
            Route.build("POST", _VERSION + _MODEL + ":countTokens", "gemini_count_tokens", self._count, self),
            Route.build("POST", _BETA + _MODEL + ":batchGenerateContent", "gemini_create", self._create, self),
            Route.build("GET", _BETA + r"/batches", "gemini_list", self._list, self),
            Route.build("GET", _BETA + _BATCH, "gemini_get", self._get, self),
            Route.build("POST", _BETA + _BATCH + ":cancel", "gemini_cancel", self._cancel, self),
            Route.build("DELETE", _BETA + _BATCH, "gemini_delete", self._delete, self),
            Route.build("POST", r"/upload" + _BETA + r"/files", "files_upload", self._upload, self),
            Route.build("GET", _BETA + _FILE + ":download", "files_download", self._download, self),
            Route.build("GET", r"/download" + _BETA + _FILE + ":download", "files_download", self._download, self),
            Route.build("GET", _BETA + _FILE, "files_get", self._file_info, self),
        ]

    def authorize(self, request: Request) -> None:
        if request.path.startswith("/upload/") and request.query_value("upload_id"):
            return  # the upload session id is the credential; the SDK sends no key with the bytes
        key = request.header("x-goog-api-key") or request.query_value("key")
        if not key:
            raise HttpError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
                "PERMISSION_DENIED",
            )
        expected = self._config().api_key
        if expected is not None and key != expected:
            raise HttpError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")

    def error_response(self, request: Request, error: HttpError) -> Response:
        status = error.error_type if error.error_type and error.error_type.isupper() else status_name(error.status)
        message = error.message or f"Emulated {status}"
        body = {"error": {"code": error.status, "message": message, "status": status}}
        headers = list(error.headers)
        if request.path.startswith("/upload/"):
            # Without an upload status the SDK retries the same chunk with sleeps; the real API sends one.
            headers.append(("x-goog-upload-status", "final"))
        return _json(body, status=error.status, headers=headers)

    # --- inspection -----------------------------------------------------------------------------

    def job(self, name: str) -> GeminiJob:
        """The live record of a job (`batches/x` or `x`; KeyError if unknown), brought up to date first."""
        with self._lock:
            job = self._jobs[name.removeprefix("batches/")]
            self._advance(job, time.monotonic())
            return job

    def jobs(self) -> list[GeminiJob]:
        with self._lock:
            return list(self._jobs.values())

    def file(self, name: str) -> StoredFile:
        with self._lock:
            return self._files[name.removeprefix("files/")]

    # --- generateContent / countTokens ----------------------------------------------------------

    def _generate(self, request: Request, path: dict[str, str]) -> Response:
        return _json(self._answer(request, path))

    def _stream(self, request: Request, path: dict[str, str]) -> Response:
        """streamGenerateContent: with `alt=sse` server-sent events (what the SDK asks for), else one JSON
        array streamed piece by piece, as the real API answers."""
        pieces = stream_chunks(self._answer(request, path))
        if request.query_value("alt") == "sse":
            events = [b"data: " + json.dumps(piece).encode() + b"\r\n\r\n" for piece in pieces]
            return Response(status=200, chunks=events, content_type="text/event-stream")
        parts = [(b"[" if i == 0 else b",\r\n") + json.dumps(piece).encode() for i, piece in enumerate(pieces)]
        return Response(status=200, chunks=[*parts, b"]"])

    def _answer(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        model = find_model(path["model"], path["version"])
        body = validate_request(request.json())
        check_thinking(model, body)
        tier = str(body.get("serviceTier") or "standard").lower()
        if tier == "flex" and has_marker(body, FLEX_UNAVAILABLE_MARKER):
            raise HttpError(
                429,
                f"Flex capacity is not available for {model.id} right now; retry later or use the standard tier "
                "([[emulator:flex-unavailable]] marker)",
                "RESOURCE_EXHAUSTED",
            )
        if has_sync_error_marker(body):
            raise invalid("emulated invalid request ([[emulator:sync-errored]] marker)")
        cached = self.implicit_cache.account(model, body)
        return build_response(model, body, response_id=random_id(22), cached=cached)

    def _model_info(self, request: Request, path: dict[str, str]) -> Response:
        model = find_model(path["model"], path["version"])
        return _json(
            {
                "name": f"models/{model.id}",
                "baseModelId": model.id,
                "version": "001",
                "displayName": model.id,
                "inputTokenLimit": model.input_token_limit,
                "outputTokenLimit": model.output_token_limit,
                "supportedGenerationMethods": [
                    "generateContent",
                    "countTokens",
                    "batchGenerateContent",
                    "streamGenerateContent",
                ],
                "thinking": True,
            }
        )

    def _count(self, request: Request, path: dict[str, str]) -> Response:
        find_model(path["model"], path["version"])
        body = request.json()
        if isinstance(body, dict) and "generateContentRequest" in body:
            body = body["generateContentRequest"]
        counted = validate_request({k: v for k, v in body.items() if k != "model"} if isinstance(body, dict) else body)
        total = prompt_tokens(counted)
        return _json({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})

    # --- batches --------------------------------------------------------------------------------

    def _create(self, request: Request, path: dict[str, str]) -> Response:
        model = find_model(path["model"], path["version"])
        config = self._config()
        body = request.json()
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            raise invalid("batch is required")
        input_config = batch.get("inputConfig") or batch.get("input_config")
        if not isinstance(input_config, dict):
            raise invalid("batch.input_config is required")
        file_name = input_config.get("fileName") or input_config.get("file_name")
        inline = input_config.get("requests")
        if (file_name is None) == (inline is None):
            raise invalid("batch.input_config: exactly one of requests or file_name must be set")
        items: list[GeminiItem] = []
        if inline is not None:
            if len(request.raw_body) > config.gemini_inline_limit_bytes:
                raise invalid(
                    f"Request payload size exceeds the limit: {config.gemini_inline_limit_bytes} bytes. "
                    "Use a file (input_config.file_name) for larger batches."
                )
            entries = inline.get("requests") if isinstance(inline, dict) else None
            if not isinstance(entries, list) or not entries:
                raise invalid("batch.input_config.requests.requests must be a non-empty list")
            for index, entry in enumerate(entries):
                where = f"batch.input_config.requests.requests[{index}]."
                if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
                    raise invalid(f"{where}request is required")
                metadata = entry.get("metadata")
                if metadata is not None and not isinstance(metadata, dict):
                    raise invalid(f"{where}metadata must be an object")
                key = metadata.get("key") if metadata else None
                items.append(self._plan(model, key, metadata, entry["request"], f"{where}request.", str(index)))
        else:
            items = self._items_from_file(model, str(file_name))
        self._check_keys(items)
        # A turn an agent script marks `slow` holds its whole batch open longer.
        slow = SLOW_FACTOR if any(is_slow(i.request) for i in items) else 1
        now = time.monotonic()
        job = GeminiJob(
            id=random_id(20).lower(),
            seq=next(self._seq),
            model=model,
            display_name=str(batch.get("displayName") or batch.get("display_name") or ""),
            items=items,
            created_at=datetime.now(UTC),
            created_mono=now,
            processing_seconds=config.processing_seconds * slow,
            input_file=None if file_name is None else str(file_name),
        )
        failing = config.gemini_job_error or (
            "the job failed ([[emulator:job-failed]] marker)"
            if any(has_marker(i.request, JOB_FAILED_MARKER) for i in items)
            else None
        )
        job.job_error = failing
        if failing or all(item.planned != "hang" for item in items):
            job.end_mono = now + job.processing_seconds
        job.updated_at = job.created_at
        with self._lock:
            self._jobs[job.id] = job
            # Not advanced: like the real API, create answers PENDING even when the job is about to end.
            return _json(self._render(job, request))

    def _items_from_file(self, model: GeminiModel, file_name: str) -> list[GeminiItem]:
        with self._lock:
            stored = self._files.get(file_name.removeprefix("files/"))
        if stored is None or stored.job_id is not None:
            raise HttpError(404, f"File {file_name} not found or not accessible.", "NOT_FOUND")
        items: list[GeminiItem] = []
        for number, line in enumerate(stored.data.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise invalid(f"{file_name} line {number}: not valid JSON") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
                raise invalid(f"{file_name} line {number}: each line needs a `request` object")
            key = entry.get("key")
            if key is not None and not isinstance(key, str):
                raise invalid(f"{file_name} line {number}: `key` must be a string")
            where = f"{file_name} line {number}: request."
            items.append(self._plan(model, key, None, entry["request"], where, str(number)))
        if not items:
            raise invalid(f"{file_name} holds no requests")
        return items

    @staticmethod
    def _check_keys(items: list[GeminiItem]) -> None:
        seen: set[str] = set()
        for item in items:
            if item.key is None:
                continue
            if item.key in seen:
                raise invalid(f"duplicate request key {item.key!r} in batch")
            seen.add(item.key)

    def _plan(
        self,
        model: GeminiModel,
        key: str | None,
        metadata: dict[str, Any] | None,
        raw: dict[str, Any],
        where: str,
        fallback_key: str,
    ) -> GeminiItem:
        body = validate_request(raw, where)
        item_model = body.get("model")
        if item_model is not None and str(item_model).removeprefix("models/") not in (model.id, *model.aliases):
            raise invalid(f"{where}model must match the batch's model {model.id}")
        try:
            check_thinking(model, body)
        except HttpError as exc:
            # Found when the item is processed, as with the real API: the job runs and this entry errors.
            return GeminiItem(key, metadata, body, "errored", {"code": _RPC_INVALID_ARGUMENT, "message": exc.message})
        config = self._config()
        outcome = batch_marker(body) or next(
            (o for glob, o in config.outcomes.items() if fnmatch.fnmatchcase(key or fallback_key, glob)),
            config.default_outcome,
        )
        if outcome not in OUTCOMES:
            raise HttpError(500, f"emulator misconfigured: unknown outcome {outcome!r}", "INTERNAL")
        error: dict[str, Any] | None = None
        if outcome == "errored":
            error = {"code": _RPC_INVALID_ARGUMENT, "message": f"emulated error for {key or fallback_key}"}
        return GeminiItem(key, metadata, body, outcome, error)

    def _advance(self, job: GeminiJob, now: float) -> None:
        """Move the job to where wall time says it is. Caller holds the lock."""
        if job.state in _TERMINAL:
            return
        if job.end_mono is not None and now >= job.end_mono:
            self._finish(job)
        elif job.state == "BATCH_STATE_PENDING":
            job.state = "BATCH_STATE_RUNNING"
            job.updated_at = job.wall(now)

    def _finish(self, job: GeminiJob) -> None:
        assert job.end_mono is not None
        done_mono = job.created_mono + job.processing_seconds
        canceled_early = job.cancel_mono is not None and job.cancel_mono < done_mono
        job.ended_at = job.updated_at = job.wall(job.end_mono)
        if job.job_error and not canceled_early:
            job.state = "BATCH_STATE_FAILED"
            return
        for item in job.items:
            item.final = "canceled" if item.planned == "hang" or canceled_early else item.planned
        # Implicit-cache hits are decided once, in request order, so every download agrees.
        for item in job.items:
            if item.final == "succeeded":
                item.cached = self.implicit_cache.account(job.model, item.request)
        finals = {item.final for item in job.items}
        if job.cancel_mono is not None or "canceled" in finals:
            job.state = "BATCH_STATE_CANCELLED"
        elif "expired" in finals:
            job.state = "BATCH_STATE_EXPIRED"
        else:
            job.state = "BATCH_STATE_SUCCEEDED"
        if job.input_file is not None:
            output = StoredFile(
                f"batch-{job.id}", f"{job.name} output", "application/jsonl", job.ended_at, job_id=job.id
            )
            self._files[output.id] = output
            job.output_file = output.name

    def _render(self, job: GeminiJob, request: Request) -> dict[str, Any]:
        done = job.state in _TERMINAL
        finished = [i for i in job.items if i.final in ("succeeded", "errored")]
        ok = sum(1 for i in finished if i.final == "succeeded")
        metadata: dict[str, Any] = {
            "@type": _BATCH_TYPE,
            "model": f"models/{job.model.id}",
            "displayName": job.display_name,
            "createTime": rfc3339(job.created_at),
            "updateTime": rfc3339(job.updated_at),
            "state": job.state,
            "name": job.name,
            # int64 fields travel as strings in proto JSON.
            "batchStats": {
                "requestCount": str(len(job.items)),
                "successfulRequestCount": str(ok),
                "failedRequestCount": str(len(finished) - ok),
                "pendingRequestCount": str(0 if done else len(job.items)),
            },
        }
        body: dict[str, Any] = {"name": job.name, "metadata": metadata, "done": done}
        if done:
            metadata["endTime"] = rfc3339(job.ended_at)
        if job.state == "BATCH_STATE_FAILED":
            body["error"] = {"code": _RPC_INVALID_ARGUMENT, "message": job.job_error}
        elif done:
            output: dict[str, Any]
            if job.output_file is not None:
                output = {"responsesFile": job.output_file}
            else:
                entries = [self._entry(job, item) for item in job.items if item.final in ("succeeded", "errored")]
                entries += [self._entry(job, item) for item in _foreign(job, request.foreign_results)]
                output = {"inlinedResponses": {"inlinedResponses": entries}}
            metadata["output"] = output
            body["response"] = {"@type": _OUTPUT_TYPE, **output}
        return body

    @staticmethod
    def _entry(job: GeminiJob, item: GeminiItem) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if item.final == "succeeded":
            # Position in the job names an item without a key; either way every download agrees.
            response_id = derived_id(job.id, item.key or str(job.items.index(item)))
            entry["response"] = build_response(
                job.model, item.request, response_id=response_id, cached=item.cached, batch=True
            )
        else:
            entry["error"] = item.error
        if item.metadata is not None:
            entry["metadata"] = item.metadata
        return entry

    def _get_job(self, batch_id: str) -> GeminiJob:
        job = self._jobs.get(batch_id)
        if job is None:
            raise HttpError(404, f"Batch batches/{batch_id} not found.", "NOT_FOUND")
        self._advance(job, time.monotonic())
        return job

    def _get(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            return _json(self._render(self._get_job(path["batch_id"]), request))

    def _list(self, request: Request, _: dict[str, str]) -> Response:
        try:
            size = int(request.query_value("pageSize") or 50)
            start = int(request.query_value("pageToken") or 0)
        except ValueError:
            raise invalid("pageSize and pageToken must be integers") from None
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.seq, reverse=True)
            page = jobs[start : start + max(1, min(size, 1000))]
            for job in page:
                self._advance(job, time.monotonic())
            body: dict[str, Any] = {"operations": [self._render(j, request) for j in page]}
            if start + len(page) < len(jobs):
                body["nextPageToken"] = str(start + len(page))
            return _json(body)

    def _cancel(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            job = self._get_job(path["batch_id"])
            if job.state in _TERMINAL:
                raise HttpError(400, f"Batch {job.name} has already finished ({job.state}).", "FAILED_PRECONDITION")
            if job.cancel_mono is None:
                now = time.monotonic()
                job.cancel_mono = now
                job.end_mono = now + self._config().cancel_seconds
                job.updated_at = job.wall(now)
            return _json({})

    def _delete(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            job = self._get_job(path["batch_id"])
            if job.state not in _TERMINAL:
                raise HttpError(400, f"Batch {job.name} is still running; cancel it first.", "FAILED_PRECONDITION")
            del self._jobs[job.id]
            return _json({})

    # --- files ----------------------------------------------------------------------------------

    def _upload(self, request: Request, _: dict[str, str]) -> Response:
        upload_id = request.query_value("upload_id")
        if upload_id is None:
            return self._start_upload(request)
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise HttpError(404, "upload session not found or expired", "NOT_FOUND")
            command = (request.header("x-goog-upload-command") or "").replace(" ", "").split(",")
            offset = int(request.header("x-goog-upload-offset") or upload.received)
            if "upload" not in command or offset != upload.received:
                raise invalid(f"upload chunk at offset {offset} does not continue at {upload.received}")
            upload.parts.append(request.raw_body)
            upload.received += len(request.raw_body)
            if "finalize" not in command:
                return Response(200, b"", headers=[("x-goog-upload-status", "active")])
            del self._uploads[upload_id]
            data = b"".join(upload.parts)
            if len(data) != upload.size:
                raise invalid(f"upload finalized with {len(data)} bytes, {upload.size} were announced")
            file_id = (upload.name or "").removeprefix("files/") or random_id(12).lower()
            stored = StoredFile(file_id, upload.display_name, upload.mime_type, datetime.now(UTC), data)
            self._files[file_id] = stored
            return _json({"file": _file_body(stored, request)}, headers=[("x-goog-upload-status", "final")])

    def _start_upload(self, request: Request) -> Response:
        if (request.header("x-goog-upload-protocol") or "").lower() != "resumable" or (
            request.header("x-goog-upload-command") or ""
        ).lower() != "start":
            raise invalid("only resumable uploads are supported (X-Goog-Upload-Protocol: resumable, command start)")
        body = request.parsed_body() or {}
        file = body.get("file") if isinstance(body, dict) else None
        file = file if isinstance(file, dict) else {}
        mime = request.header("x-goog-upload-header-content-type") or file.get("mimeType") or file.get("mime_type")
        if not mime:
            raise invalid("the file's mime type is required (X-Goog-Upload-Header-Content-Type)")
        try:
            size = int(request.header("x-goog-upload-header-content-length") or file.get("sizeBytes") or 0)
        except ValueError:
            raise invalid("X-Goog-Upload-Header-Content-Length must be an integer") from None
        upload_id = random_id(32)
        display = str(file.get("displayName") or file.get("display_name") or "")
        name = file.get("name")
        with self._lock:
            self._uploads[upload_id] = _Upload(str(mime), size, display, str(name) if name else None)
        version = request.path.split("/")[2]
        url = f"{request.base_url}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return Response(200, b"", headers=[("x-goog-upload-url", url), ("x-goog-upload-status", "active")])

    def _stored(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise HttpError(404, f"File files/{file_id} not found or not accessible.", "NOT_FOUND")
        return stored

    def _file_info(self, request: Request, path: dict[str, str]) -> Response:
        with self._lock:
            return _json(_file_body(self._stored(path["file_id"]), request))

    def _download(self, request: Request, path: dict[str, str]) -> Response:
        if request.query_value("alt") != "media":
            raise invalid("download requires alt=media")
        with self._lock:
            stored = self._stored(path["file_id"])
            if stored.job_id is None:
                raise invalid("Only generated files can be downloaded; this file was uploaded.")
            job = self._jobs.get(stored.job_id)
            if job is None:
                raise HttpError(404, f"File {stored.name} is no longer available.", "NOT_FOUND")
            entries = [
                (item.key, self._entry(job, item)) for item in job.items if item.final in ("succeeded", "errored")
            ]
            entries += [(item.key, self._entry(job, item)) for item in _foreign(job, request.foreign_results)]
        # A fixed shuffle per job: clients must match on key, and every download is identical.
        random.Random(job.id).shuffle(entries)
        return Response(200, chunks=_file_chunks(entries), content_type="application/octet-stream")


def _foreign(job: GeminiJob, count: int) -> list[GeminiItem]:
    """Fault injection: answered items for keys the job never held (as a server mix-up would give)."""
    if not job.items:
        return []
    return [
        replace(job.items[0], key=f"never_submitted_{n}", metadata={"key": f"never_submitted_{n}"}, final="succeeded")
        for n in range(count)
    ]


def _file_chunks(entries: Sequence[tuple[str | None, dict[str, Any]]]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for key, entry in entries:
        line = {"key": key, **{k: v for k, v in entry.items() if k != "metadata"}}
        text = json.dumps(line, separators=(",", ":")) + "\n"
        buffer.append(text)
        size += len(text)
        if size >= _CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _file_body(stored: StoredFile, request: Request) -> dict[str, Any]:
    size = len(stored.data)
    return {
        "name": stored.name,
        "displayName": stored.display_name,
        "mimeType": stored.mime_type,
        "sizeBytes": str(size),
        "createTime": rfc3339(stored.created_at),
        "updateTime": rfc3339(stored.created_at),
        "expirationTime": rfc3339(stored.created_at + _FILE_TTL),
        "uri": f"{request.base_url}/v1beta/{stored.name}",
        "state": "ACTIVE",
        "source": "GENERATED" if stored.job_id else "UPLOADED",
        **({"downloadUri": f"{request.base_url}/v1beta/{stored.name}:download?alt=media"} if stored.job_id else {}),
    }


def _json(body: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status=status, body=json.dumps(body).encode(), headers=list(headers))
