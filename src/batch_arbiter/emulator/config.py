"""Knobs that steer the emulator, and the call records it keeps for test assertions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Every route name a Fault may target: the Anthropic API's, then the Gemini API's (its own names, so a
# fault aimed at one provider never hits the other).
ANTHROPIC_ROUTES = frozenset(
    {"create", "retrieve", "list", "cancel", "delete", "results", "messages", "models", "count_tokens"}
)
GEMINI_ROUTES = frozenset(
    {
        "gemini_generate",
        "gemini_model",
        "gemini_count_tokens",
        "gemini_create",
        "gemini_list",
        "gemini_get",
        "gemini_cancel",
        "gemini_delete",
        "files_upload",
        "files_download",
        "files_get",
    }
)
ROUTES = ANTHROPIC_ROUTES | GEMINI_ROUTES

# "hang" is not a result type on the wire: it keeps an item processing until the batch is canceled.
OUTCOMES = frozenset({"succeeded", "errored", "expired", "canceled", "hang", "missing"})
# "missing" is not a result type either: the item's line is left out of the results file.

# How a Fault fails a call: answer with an HTTP error status; close the connection before handling
# ("drop"); handle the call and then close without answering, so its effect happens but the client never
# learns of it ("lose-response"); stream only `after_lines` lines of the body and then close ("cut"); stream
# only `after_lines` lines and then end the body as if it were complete, with no transport error ("truncate");
# handle the call and answer 200 with a body that is not JSON ("garble"); or handle a results call and add
# `extra` results for custom ids (keys) that were never submitted ("foreign-results").
FAULT_KINDS = frozenset({"status", "drop", "lose-response", "cut", "truncate", "garble", "foreign-results"})
# The routes that serve batch results, which "foreign-results" applies to (Gemini's inline results travel in
# the job itself).
RESULT_ROUTES = frozenset({"results", "files_download", "gemini_get"})


@dataclass
class Fault:
    """Answer the next `times` calls of `route` with `status` instead of handling them."""

    route: str
    status: int = 0
    times: int = 1
    retry_after: float | None = None
    kind: str = "status"
    after_lines: int = 0
    # "foreign-results": how many results for never-submitted requests to add.
    extra: int = 2
    # Let this many matching calls through untouched before the fault starts to apply.
    skip: int = 0

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown fault route {self.route!r}; expected one of {sorted(ROUTES)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP error status, got {self.status}")
        if self.kind == "foreign-results" and self.route not in RESULT_ROUTES:
            raise ValueError(f"foreign-results applies to {sorted(RESULT_ROUTES)}, not {self.route!r}")
        if self.times < -1:
            raise ValueError("fault times must be -1 (always) or a count >= 0")


@dataclass
class EmulatorConfig:
    """Read on every request, so tests may change it while the server runs."""

    processing_seconds: float = 0.2
    outcomes: dict[str, str] = field(default_factory=dict)
    default_outcome: str = "succeeded"
    faults: list[Fault] = field(default_factory=list)
    api_key: str | None = None
    # How long a canceled batch stays `canceling` before it ends; non-zero so that clients must poll.
    cancel_seconds: float = 0.05
    # Synchronous generation calls (Anthropic messages, Gemini generateContent) allowed per second;
    # above it they get 429 with a `retry-after` of when the next slot frees. None = no limit.
    sync_rate_limit: float | None = None
    # Seconds a synchronous generation call takes before it answers (a model generating).
    sync_latency_seconds: float = 0.0
    # Gemini: the largest inline batch body accepted (the real API's limit is 20 MB); tests set it small
    # to drive clients onto the file-input path.
    gemini_inline_limit_bytes: int = 20 * 1024 * 1024
    # Gemini: when set, every job ends FAILED with this reason (the `[[emulator:job-failed]]` marker
    # fails a single job).
    gemini_job_error: str | None = None
    # Anthropic: False makes every 1-hour cache write a 5-minute one (reported in `usage.cache_creation` and
    # billed so), as several 2026 reports say the real API did silently; clients must read what was written.
    anthropic_cache_1h: bool = True
    # Anthropic: model id -> "active", "deprecated" or "retired", over the catalogue's own stage. A retired
    # model is listed by the models endpoint but refuses every message (404 not_found_error).
    model_lifecycle: dict[str, str] = field(default_factory=dict)
    # Anthropic: models whose `capabilities.batch.supported` is false; their batch items come back errored.
    no_batch_models: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for glob, outcome in self.outcomes.items():
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome for {glob!r} must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        if self.default_outcome not in OUTCOMES:
            raise ValueError(f"default_outcome must be one of {sorted(OUTCOMES)}, got {self.default_outcome!r}")
        if self.processing_seconds < 0 or self.cancel_seconds < 0:
            raise ValueError("processing_seconds and cancel_seconds must be >= 0")


@dataclass(frozen=True)
class Call:
    """One HTTP request as the emulator answered it. Credentials are never recorded."""

    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
