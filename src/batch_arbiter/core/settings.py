"""Action inputs, read once: from the runner's `INPUT_*` variables or from CLI flags."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from batch_arbiter.core.catalog import Effort
from batch_arbiter.core.tools import parse_tools
from batch_arbiter.errors import InputError

Provider = Literal["anthropic", "gemini"]
Mode = Literal["auto", "batch", "sync", "plan", "audit", "collect"]
OnTimeout = Literal["fallback", "leave"]

MAX_TIMEOUT_MINUTES = 7 * 24 * 60
# Status checks of a provider's own API are at least this far apart, whatever `poll-interval` says; with
# `base-url` (an emulator, a proxy) fractions down to the second floor stay allowed, for fast tests.
MIN_POLL_SECONDS = 1.0
MIN_POLL_SECONDS_BASE_URL = 0.01
# Model calls per agent conversation. Each turn past the first waits for a batch round (minutes to
# hours), so a hundred is already far more than a run's deadline can hold.
MAX_TURNS = 100


def input_env_name(field_name: str) -> str:
    """`prompt_files` -> `INPUT_PROMPT-FILES`: the runner keeps an input's hyphens."""
    return "INPUT_" + field_name.upper().replace("_", "-")


def input_name(field_name: str) -> str:
    """`prompt_files` -> `prompt-files`: the name `action.yml`, CLI flags and error messages use."""
    return field_name.replace("_", "-")


class Settings(BaseSettings):
    """Every input of `action.yml`, typed. Unset inputs arrive as empty strings and mean the default."""

    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=input_env_name),
        validate_by_name=True,
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
    )

    prompt_files: Annotated[list[str], NoDecode] = Field(default_factory=list)
    system_prompt_file: str | None = None
    response_schema: str | None = None
    provider: Provider = "anthropic"
    model: str | None = None
    effort: Effort | None = None
    workload: str | None = None
    mode: Mode = "auto"
    policy_file: str | None = None
    upgrade: bool | None = None
    # None: chosen by effort (the model's output limit at high, xhigh and max; 8192 otherwise).
    max_tokens: int | None = Field(default=None, gt=0)
    max_concurrency: int = Field(default=8, gt=0, le=256)
    poll_interval: float = Field(default=15.0, gt=0)
    # A week: well past the life of any provider's batch (24 hours on Anthropic, 48 on Gemini).
    # 0 submits and ends at once: with `on-timeout: leave` a later run collects (submit now, collect later).
    timeout_minutes: float = Field(default=300.0, ge=0, le=MAX_TIMEOUT_MINUTES)
    on_timeout: OnTimeout = "fallback"
    batch_id: str | None = None
    output_dir: str = "batch-results"
    metrics_file: str | None = None
    pricing_file: str | None = None
    budget_usd: float | None = Field(default=None, ge=0)
    # USD a minute of the job's runner; None prices it from the runner and the repository's visibility.
    runner_cost_per_minute: float | None = Field(default=None, ge=0)
    # Until when a batch left with the provider is only collected, never fallen back on: hours after
    # submitting, or an ISO 8601 time. Recorded in state.json when the batch is submitted.
    collect_by: str = "23"
    # The agent tools every request may use (a request object's own `tools` overrides them); empty: none.
    tools: Annotated[tuple[str, ...], NoDecode] = ()
    max_turns: int = Field(default=10, ge=1, le=MAX_TURNS)
    api_key: SecretStr | None = None
    base_url: str | None = None

    @field_validator("prompt_files", mode="before")
    @classmethod
    def _split_lines(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [line.strip() for line in value.splitlines() if line.strip()]
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_tools(value, where="")
            except InputError as exc:
                # Its own message, not pydantic's "Value error, ..." around it.
                raise PydanticCustomError("unknown_tool", "{message}", {"message": str(exc)}) from None
        return value

    @field_validator("provider", "mode", "on_timeout", "effort", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("upgrade", mode="before")
    @classmethod
    def _yaml_bool(cls, value: Any) -> Any:
        # The YAML 1.2 core schema GitHub documents for boolean inputs.
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            raise ValueError("must be true or false (or empty to let the policy decide)")
        return value

    @field_validator("collect_by")
    @classmethod
    def _collect_by(cls, value: str) -> str:
        text = value.strip() or "23"
        try:
            hours = float(text)
        except ValueError:
            try:
                datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("must be hours after submitting (e.g. 23) or an ISO 8601 time") from None
            return text
        if not math.isfinite(hours) or hours < 0 or hours > MAX_TIMEOUT_MINUTES / 60:
            raise ValueError(f"must be between 0 and {MAX_TIMEOUT_MINUTES // 60} hours, or an ISO 8601 time")
        return text

    @field_validator("poll_interval", "timeout_minutes", "budget_usd", "runner_cost_per_minute")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


def collect_by_time(value: str, submitted: datetime) -> datetime:
    """`collect-by` as a time: hours after `submitted`, or an ISO 8601 time (UTC when it names no zone)."""
    try:
        hours = float(value)
    except ValueError:
        moment = datetime.fromisoformat(value.strip())
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return submitted + timedelta(hours=hours)


def poll_seconds(settings: Settings) -> float:
    """`poll-interval`, raised to its floor (MIN_POLL_SECONDS, or MIN_POLL_SECONDS_BASE_URL with `base-url`)."""
    return max(settings.poll_interval, MIN_POLL_SECONDS_BASE_URL if settings.base_url else MIN_POLL_SECONDS)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; `overrides` (CLI flags) win. Errors name the input."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        name = _field_for_alias(field)
        given = first.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and name != "api-key" else ""
        raise InputError(f"input `{name}`: {first['msg']}{shown}", input=name) from None
    if not settings.prompt_files and not settings.batch_id and settings.mode != "audit":
        raise InputError(
            "input `prompt-files` is required: give one or more paths or globs, one per line",
            input="prompt-files",
        )
    return settings


def _field_for_alias(loc: str) -> str:
    for name in Settings.model_fields:
        if loc.lower() in (name, input_env_name(name).lower()):
            return input_name(name)
    return loc


def workspace_path(settings_path: str, workspace: Path) -> Path:
    """A path input, taken relative to the workspace unless it is absolute."""
    path = Path(settings_path)
    return path if path.is_absolute() else workspace / path
