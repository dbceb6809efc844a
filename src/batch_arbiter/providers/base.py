"""The provider interface: the one place where the two batch APIs differ."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from batch_arbiter.core.catalog import ModelCaps
from batch_arbiter.core.records import Outcome, PromptRequest


class BatchState(StrEnum):
    """A batch's state as the engine sees it, mapped from each provider's own; ENDED and FAILED are final."""

    RUNNING = "running"
    CANCELING = "canceling"
    ENDED = "ended"
    # The whole job failed (Gemini); no per-request results to collect.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """One poll's answer: the batch's state, the provider's per-request counts, and why the job failed, if it did."""

    id: str
    state: BatchState
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What every request of a run is sent with, unless the request says otherwise."""

    model: str
    effort: str | None = None
    max_tokens: int = 8192


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """How to reach a provider: the key, an endpoint other than the public one, timeouts and retries."""

    api_key: str | None = None
    base_url: str | None = None
    # Seconds for one HTTP call; batch calls are cheap, sync calls may generate for minutes.
    request_timeout: float = 60.0
    sync_timeout: float = 600.0
    max_retries: int = 2
    # time.monotonic() at which the run's batch wait ends: no server-requested retry wait may run past it.
    deadline: float | None = None
    # Told what the provider did on its own that the user should hear of (a duplicate batch canceled,
    # a lost create recovered); the run's report lists it.
    on_event: Callable[[str], None] | None = None


class Provider(Protocol):
    """What the engine needs of a batch API; each adapter implements it, and only adapters import an SDK."""

    name: str
    # The most one batch may hold; larger runs are split into several batches.
    max_batch_requests: int
    max_batch_bytes: int

    def model_caps(self, model: str) -> ModelCaps | None:
        """What the provider says the model supports; None when it cannot say (no endpoint, offline)."""
        ...

    def count_tokens(self, request: PromptRequest, spec: RunSpec) -> int | None:
        """Input tokens of one request by the provider's free counting endpoint, if it has one."""
        ...

    def submit(self, requests: Sequence[PromptRequest], spec: RunSpec, *, token: str | None = None) -> str:
        """Create one batch; returns its id. `token` names the create (saved in state.json before it is
        sent) so that `find_submitted` can tell this batch from any other."""
        ...

    def find_submitted(self, token: str, since: datetime, size: int) -> str | None:
        """The batch a create named `token`, sent at `since` with `size` requests, made, if the API shows
        exactly one: how a run killed between the create and its state.json finds the batch it paid for."""
        ...

    def status(self, batch_id: str) -> BatchStatus:
        """The batch's current state; raises ProviderError when the poll fails, which the engine retries."""
        ...

    def cancel(self, batch_id: str) -> None:
        """Stop the batch so nothing still queued is billed; what it already finished stays collectable."""
        ...

    def results(self, batch_id: str) -> Iterator[Outcome]:
        """Stream the ended batch's per-request outcomes (any order)."""
        ...

    def run_sync(self, request: PromptRequest, spec: RunSpec, *, deadline_remaining: float | None = None) -> Outcome:
        """One synchronous call; errors become an errored Outcome, except a refused key: AuthError, since
        no other call with that key can succeed.

        `deadline_remaining`: seconds the caller can still wait for this answer (a fallback before the run's
        deadline), which lets a provider choose a slower, cheaper tier; None asks for the fastest answer.
        """
        ...

    def close(self) -> None:
        """Release the adapter's HTTP client, once the caller is done with the provider."""
        ...


def describe_error(
    exc: BaseException | None,
    http: tuple[int | None, str, str] | None = None,
    *,
    timed_out: bool = False,
    connection: bool = False,
) -> str:
    """One wording of a failed call for every adapter: short and key-free. The adapter reads its SDK's
    error into `http` (status, kind, message), or says it `timed_out` or was a `connection` error."""
    if exc is None:
        return "no answer"
    if isinstance(exc, ValueError):
        return "the answer could not be read (not JSON)"
    if http is not None:
        code, kind, message = http
        return f"HTTP {code} {kind}: {message}".strip().rstrip(":")
    if timed_out:
        return "request timed out"
    if connection:
        return "connection error"
    return type(exc).__name__
