"""The records that flow between modules: requests in, outcomes and results out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

# How a run went: `batch+fallback` when a batch ran and some requests were rerun synchronously.
RunMode = Literal["sync", "batch", "batch+fallback", "pending"]
# A run's outcome as the `status` output gives it.
RunStatus = Literal["succeeded", "partial", "failed", "pending"]
# Where routing sends a workload.
DecisionMode = Literal["batch", "sync"]


class Status(StrEnum):
    """Where a request stands in `results.jsonl`: answered, failed one of three ways, or still with the provider."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    EXPIRED = "expired"
    CANCELED = "canceled"
    # Answered, but cut short: the output limit (`max_tokens`) was reached, or a conversation ran out of
    # `max-turns`; the last text is kept, and paid for.
    INCOMPLETE = "incomplete"
    # Left with the provider (`on-timeout: leave`): a later run collects it.
    PENDING = "pending"


class Validation(StrEnum):
    """How an answer held to its response schema: at once, after one synchronous rerun, or not at all."""

    VALID = "valid"
    FIXED = "fixed"
    INVALID = "invalid"


class Via(StrEnum):
    """How a request was answered: inside a batch, or by a synchronous call (sync mode or the fallback)."""

    BATCH = "batch"
    SYNC = "sync"


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """One model call, provider-neutral. `messages` use the common role/content shape."""

    custom_id: str
    source: str
    # A plain prompt's text, or the whole conversation. Kept as bare text when it is one: a run of
    # 250,000 requests holds all of them, and a message dict per request would cost ~60 MB more.
    content: str | tuple[dict[str, Any], ...]
    system: str | None = None
    max_tokens: int | None = None
    # The JSON Schema every answer must follow (sent as the provider's structured output); one object
    # shared by every request that uses it.
    response_schema: Mapping[str, Any] | None = None
    # The agent tools (core/tools.py names) this request may use: its own `tools`, else the input's.
    # Empty: a single model call, as without tools.
    tools: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[dict[str, Any], ...]:
        """The request as a conversation, however it is stored: a plain prompt becomes one user message."""
        if isinstance(self.content, str):
            return ({"role": "user", "content": self.content},)
        return self.content

    def text_bytes(self) -> int:
        """UTF-8 size of the prompt text: what a request weighs in a batch body, before the envelope."""
        if isinstance(self.content, str):
            texts: list[str] = [self.content]
        else:
            texts = [m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in self.content]
        return sum(len(t.encode("utf-8")) for t in texts) + len((self.system or "").encode("utf-8"))


@dataclass(slots=True)
class Usage:
    """Token counts on common names; `input_tokens` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    # The part of `cache_creation_tokens` written with the 1-hour TTL (priced higher).
    cache_creation_1h_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Add `other`'s counts to these, in place: how a run's totals grow."""
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_creation_tokens += other.cache_creation_tokens
        self.cache_creation_1h_tokens += other.cache_creation_1h_tokens

    def as_dict(self) -> dict[str, int]:
        """The counts by field name, as a results line stores them."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cache_creation_1h_tokens": self.cache_creation_1h_tokens,
        }


@dataclass(slots=True)
class Outcome:
    """What a provider reports for one request, before pricing."""

    custom_id: str
    status: Status
    model: str | None = None
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    # The service tier the call ran on ("batch", "standard", "flex"); None lets the writer infer it from
    # how the request ran. A request answered on Flex is priced at the batch rate.
    tier: str | None = None
    # With a response schema: the parsed answer (when it validated) and how it held to the schema.
    json: Any = None
    validation: Validation | None = None
    # Why the model stopped, as the provider words it (Anthropic `stop_reason`, Gemini `finishReason` or
    # a prompt's `blockReason`); None when no answer came back.
    stop_reason: str | None = None

    @property
    def settled(self) -> bool:
        """Whether this outcome is final: an answer (whole or cut short), or a refusal the provider billed.
        A refusal is not rerun: the same prompt would be refused, and paid for, again."""
        if self.status in (Status.SUCCEEDED, Status.INCOMPLETE):
            return True
        return self.status is Status.ERRORED and self.stop_reason is not None


@dataclass(slots=True)
class RequestResult:
    """One line of `results.jsonl`."""

    custom_id: str
    source: str
    status: Status
    via: Via
    model: str | None
    text: str | None
    usage: Usage
    cost_usd: float
    sync_cost_usd: float
    error: str | None
    tier: str | None = None
    json: Any = None
    validation: Validation | None = None
    # An earlier answer that did not match the schema (paid, and counted in usage and cost above).
    first_answer: dict[str, Any] | None = None
    stop_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `results.jsonl` line: enums as their strings, costs rounded to 8 decimals; `json`,
        `validation` and `first_answer` only for a request with a response schema."""
        line: dict[str, Any] = {
            "custom_id": self.custom_id,
            "source": self.source,
            "status": str(self.status),
            "via": str(self.via),
            "model": self.model,
            "text": self.text,
            "usage": self.usage.as_dict(),
            "cost_usd": round(self.cost_usd, 8),
            "sync_cost_usd": round(self.sync_cost_usd, 8),
            "error": self.error,
            "tier": self.tier,
            "stop_reason": self.stop_reason,
        }
        if self.validation is not None:
            line["json"] = self.json
            line["validation"] = str(self.validation)
            if self.first_answer is not None:
                line["first_answer"] = self.first_answer
        return line


def as_count(value: Any) -> int:
    """A token or request count read from JSON: ints, numeric strings (int64 counts arrive as strings
    in proto JSON) and floats become a non-negative int; anything else is 0."""
    if type(value) is int:
        return max(value, 0)
    try:
        return max(int(float(value)), 0)
    except (TypeError, ValueError, OverflowError):
        return 0
