"""What the product knows about models offline: capability order and effort levels.

The providers' capability endpoints (Anthropic `models.retrieve`) win over this table when they answer;
the table keeps `plan`, tests and air-gapped runs working and orders models for the upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, get_args

# The effort levels, lowest first: the `effort` input takes these, and a model supports some of them.
Effort = Literal["low", "medium", "high", "xhigh", "max"]
EFFORTS: tuple[str, ...] = get_args(Effort)
_ALL = EFFORTS
_NO_XHIGH = ("low", "medium", "high", "max")


LifecycleState = Literal["active", "deprecated", "retired"]


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a model is in its provider's lifecycle on a date: `retired` models answer no call (or answer
    from another model at its price), `deprecated` ones still do until `retires_on`."""

    state: LifecycleState
    retires_on: date | None = None
    replacement: str | None = None
    # Where the dates come from: the provider's models endpoint, or the row's source below.
    source: str = ""


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """What a model accepts: its effort levels (empty when it takes none) and whether it may run in a batch;
    `lifecycle` when the provider's models endpoint says it (None: the offline table decides)."""

    efforts: tuple[str, ...]
    batch: bool = True
    # The largest `max_tokens` the model takes (its output limit); None when unknown.
    max_output_tokens: int | None = None
    lifecycle: Lifecycle | None = None


# Announced retirements: model -> (deprecated from, retired from, replacement, source and the date it was read).
# From `retired from` on, the model is refused before any call; before it, a run warns with the date.
_RETIREMENTS: dict[str, tuple[date, date, str | None, str]] = {
    # Requests to these are re-routed to the replacement and billed at its rates from 2026-12-01.
    "gemini-2.5-pro": (
        date(2026, 6, 17),
        date(2026, 12, 1),
        "gemini-3.8-flash",
        "https://dev.to/aideprecations/what-to-do-before-gemini-25-pro-and-25-flash-are-retired-on-december-1-2026-5gg9"
        " (quoting https://ai.google.dev/gemini-api/docs/deprecations, read 2026-11-10); read 2026-12-02",
    ),
    "gemini-2.5-flash": (
        date(2026, 6, 17),
        date(2026, 12, 1),
        "gemini-3.5-flash-lite",
        "same as gemini-2.5-pro; gemini-2.5-flash-lite is not deprecated there",
    ),
    # anthropic 2.12.0 `DEPRECATED_MODELS` (anthropic/resources/messages/messages.py:90): "November 30th, 2026".
    # The models endpoint's `lifecycle` wins over this row when it answers.
    "claude-sonnet-4-5": (
        date(2026, 9, 29),
        date(2026, 11, 30),
        "claude-sonnet-5-5",
        "anthropic SDK 2.12.0 DEPRECATED_MODELS, resources/messages/messages.py:90",
    ),
}


def offline_lifecycle(model: str, on: date) -> Lifecycle:
    """The model's lifecycle on `on` by the announced retirements above; `active` for any other model."""
    base = base_model(model) or model
    row = _RETIREMENTS.get(base)
    if row is None:
        return Lifecycle("active")
    deprecated, retired, replacement, source = row
    if on >= retired:
        return Lifecycle("retired", retired, replacement, source)
    if on >= deprecated:
        return Lifecycle("deprecated", retired, replacement, source)
    return Lifecycle("active", retired, replacement, source)


def is_live(model: str, on: date) -> bool:
    """Whether `model` is open to new use on `on`: neither deprecated nor retired (what the upgrade ranks)."""
    return offline_lifecycle(model, on).state == "active"


# Most capable first. Invitation-only lines (Mythos) are priced but never chosen by the upgrade.
RANKING: dict[str, tuple[str, ...]] = {
    "anthropic": (
        "claude-fable-5-2",
        "claude-fable-5-1",
        "claude-opus-5-5",
        "claude-fable-5",
        "claude-opus-5",
        "claude-sonnet-5-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-sonnet-5",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-5",
        "claude-haiku-5-5",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    ),
    "gemini": (
        "gemini-4-carbon",
        "gemini-4-argon",
        "gemini-4-hydrogen",
        "gemini-3.1-pro-preview",
        "gemini-3.8-flash",
        "gemini-2.5-pro",
        "gemini-3.5-flash",
        "gemini-2.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-2.5-flash-lite",
    ),
}

# Effort levels per model, as read on 2026-12-02. Every id is one the installed SDKs list (anthropic
# types/model.py, google-genai _gaos/types/interactions/model.py; tests/unit/test_catalog_ids.py holds that).
# Claude: https://platform.claude.com/docs/en/build-with-claude/effort (its supported-models list; `xhigh` on
# the newer models only). Gemini: thinking levels from https://ai.google.dev/gemini-api/docs/generate-content/latest-model
# (Argon), LiteLLM discussions #46238/#51436 (Argon, Hydrogen), docs.apiyi.com (3.8 Flash), docs.litellm.ai's
# Gemini 3.1 Pro note (`medium` added); budgets on 2.5 from hexdocs.pm gemini_ex ThinkingConfig.
_EFFORTS_BY_MODEL: dict[str, tuple[str, ...]] = {
    "claude-fable-5-2": _ALL,
    "claude-fable-5-1": _ALL,
    "claude-fable-5": _ALL,
    "claude-mythos-5-2": _ALL,
    "claude-mythos-5-1": _ALL,
    "claude-mythos-5": _ALL,
    "claude-opus-5-5": _ALL,
    "claude-opus-5": _ALL,
    "claude-sonnet-5-5": _ALL,
    "claude-sonnet-5": _ALL,
    "claude-opus-4-8": _ALL,
    "claude-opus-4-7": _ALL,
    "claude-opus-4-6": _NO_XHIGH,
    "claude-sonnet-4-6": _NO_XHIGH,
    "claude-haiku-5-5": _NO_XHIGH,
    "claude-opus-4-5": ("low", "medium", "high"),
    "claude-sonnet-4-5": (),
    "claude-haiku-4-5": (),
    # Gemini: thinking levels on 3.x/4, thinking budgets on 2.5 (every level maps to a budget).
    "gemini-4-carbon": ("low", "medium", "high"),
    "gemini-4-argon": ("low", "medium", "high"),
    "gemini-4-hydrogen": ("low", "medium", "high", "xhigh"),
    "gemini-3.8-flash": ("low", "medium", "high"),
    "gemini-3.5-flash": ("low", "medium", "high"),
    "gemini-3.5-flash-lite": ("low", "medium", "high"),
    "gemini-3.1-pro-preview": ("low", "medium", "high"),
    "gemini-2.5-pro": _ALL,
    "gemini-2.5-flash": _ALL,
    "gemini-2.5-flash-lite": _ALL,
}


def catalogued_models() -> tuple[str, ...]:
    """Every model id the offline catalogue describes."""
    return tuple(_EFFORTS_BY_MODEL)


# The `max-tokens` default at low and medium effort, or without one.
DEFAULT_MAX_TOKENS = 8192
# Efforts that think long enough for 8,192 tokens (thinking included) to cut answers short: at these the
# default is the model's own output limit.
LONG_EFFORTS = ("high", "xhigh", "max")
# Output limits (max_tokens) by model, from the providers' model pages and the Anthropic models endpoint's
# `max_tokens` (which wins when it answers). Gemini models all take 65,536 output tokens.
_OUTPUT_LIMITS: dict[str, int] = {
    "claude-sonnet-5": 64_000,
    "claude-sonnet-4-6": 64_000,
    "claude-opus-4-5": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
}
_CLAUDE_OUTPUT_LIMIT = 128_000
_GEMINI_OUTPUT_LIMIT = 65_536
# The most one request in a batch may ask for, by provider: Anthropic's Message Batches take a model's
# own limit (300k only with the `output-300k` beta, which is not sent); Gemini's batch items take 65,536.
BATCH_OUTPUT_CAP = {"anthropic": 128_000, "gemini": 65_536}


def output_limit(model: str) -> int | None:
    """The catalogue's output limit (largest `max_tokens`) for `model`; None for a model it lacks."""
    base = base_model(model)
    if base is None:
        return None
    if base in _OUTPUT_LIMITS:
        return _OUTPUT_LIMITS[base]
    return _GEMINI_OUTPUT_LIMIT if base.startswith("gemini-") else _CLAUDE_OUTPUT_LIMIT


def default_max_tokens(effort: str | None, model_limit: int | None, batch_cap: int | None) -> tuple[int, str]:
    """The `max_tokens` of a run whose `max-tokens` input is empty, and why: the model's output limit
    (capped to what a batch allows) at high, xhigh and max effort, where thinking eats into the limit,
    else DEFAULT_MAX_TOKENS."""
    if effort not in LONG_EFFORTS or model_limit is None:
        why = "the default" if effort not in LONG_EFFORTS else "the default (the model's output limit is unknown)"
        return DEFAULT_MAX_TOKENS, why
    limit = min(model_limit, batch_cap) if batch_cap else model_limit
    capped = " (capped to what a batch allows)" if limit < model_limit else ""
    return limit, f"the model's output limit for effort {effort}{capped}"


def base_model(model: str) -> str | None:
    """The catalog entry a model id belongs to (dated ids and suffixes included), longest match first."""
    matches = [m for m in _EFFORTS_BY_MODEL if model == m or model.startswith(m + "-")]
    return max(matches, key=len) if matches else None


def offline_caps(model: str) -> ModelCaps | None:
    """The catalog's capabilities for `model`, used when the provider cannot say; None for a model it lacks."""
    base = base_model(model)
    return ModelCaps(_EFFORTS_BY_MODEL[base], max_output_tokens=output_limit(model)) if base else None


def clamp_effort(requested: str, supported: tuple[str, ...]) -> str | None:
    """The requested level if supported, else the nearest supported one (the lower on a tie)."""
    if requested in supported or not supported:
        return requested if requested in supported else None
    want = EFFORTS.index(requested)
    return min(supported, key=lambda level: (abs(EFFORTS.index(level) - want), EFFORTS.index(level)))


def highest_effort(supported: tuple[str, ...]) -> str | None:
    """The strongest of the `supported` levels, which an upgraded run asks for; None when there are none."""
    return max(supported, key=EFFORTS.index) if supported else None
