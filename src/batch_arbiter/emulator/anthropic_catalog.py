"""The models the emulator knows, shaped as `ModelInfo` (anthropic `types/model_info.py`).

The capability table is a plausible reading of the public docs as of late 2026, not an authority: it
exists so that code doing capability discovery through `models.retrieve` has something realistic to
discover, and so that requests the real API would refuse (an effort level or thinking mode the model
lacks) are refused here as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    line: str
    created_at: str
    max_input_tokens: int
    max_tokens: int
    effort: frozenset[str]
    thinking: frozenset[str]
    aliases: tuple[str, ...] = ()

    def info(self, lifecycle: str | None = None, *, batch: bool = True) -> dict[str, Any]:
        """The ModelInfo body; `lifecycle` overrides the table's stage (how tests retire a model), `batch`
        False says the model cannot run in a batch."""

        def support(flag: bool) -> dict[str, bool]:
            return {"supported": flag}

        stage, deprecated_at, retires_at = LIFECYCLE.get(self.id, ("active", None, None))
        stage = lifecycle or stage
        if stage != "active" and deprecated_at is None:
            deprecated_at = self.created_at
        return {
            "id": self.id,
            "type": "model",
            "display_name": self.display_name,
            "created_at": self.created_at,
            "lifecycle": stage,
            "deprecated_at": deprecated_at if stage != "active" else None,
            "retires_at": retires_at if stage == "deprecated" else None,
            "line": self.line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "capabilities": {
                "batch": support(batch),
                "citations": support(True),
                "code_execution": support(True),
                "context_management": {
                    "supported": True,
                    "clear_thinking_20251015": support(True),
                    "clear_tool_uses_20250919": support(True),
                    "compact_20260112": support(True),
                },
                "effort": {
                    "supported": bool(self.effort),
                    **{level: support(level in self.effort) for level in EFFORT_LEVELS},
                },
                "image_input": support(True),
                "pdf_input": support(True),
                "server_tools": {
                    "supported": True,
                    "code_execution": support(True),
                    "web_search": support(True),
                },
                "structured_outputs": support(True),
                "thinking": {
                    "supported": True,
                    "types": {kind: support(kind in self.thinking) for kind in THINKING_TYPES},
                },
            },
        }


# Lifecycle stages other than active: id -> (lifecycle, deprecated_at, retires_at). anthropic 2.12.0 lists
# claude-sonnet-4-5 in DEPRECATED_MODELS with end of life "November 30th, 2026"
# (anthropic/resources/messages/messages.py:90); the deprecation date itself is not published there.
LIFECYCLE: dict[str, tuple[str, str | None, str | None]] = {
    "claude-sonnet-4-5": ("deprecated", None, "2026-11-30T00:00:00Z"),
}

# Newest first, which is the order `GET /v1/models` lists them in. Effort "all" = every level; the
# last column, when set, is the date suffix of the model's dated id (accepted as an alias).
# id              | released   | context | output | effort levels       | thinking types | dated id
_TABLE = """
claude-fable-5-2  | 2026-11-12 | 1M   | 128K | all                 | adaptive |
claude-haiku-5-5  | 2026-10-28 | 1M   | 128K | low medium high max | adaptive disabled |
claude-sonnet-5-5 | 2026-10-21 | 1M   | 128K | all                 | adaptive disabled between_tools |
claude-fable-5-1  | 2026-09-30 | 1M   | 128K | all                 | adaptive |
claude-opus-5-5   | 2026-09-16 | 1M   | 128K | all                 | adaptive |
claude-sonnet-5   | 2026-07-22 | 1M   | 64K  | all                 | adaptive disabled |
claude-opus-5     | 2026-06-24 | 1M   | 128K | all                 | adaptive disabled |
claude-opus-4-8   | 2026-05-13 | 1M   | 128K | all                 | adaptive enabled disabled |
claude-opus-4-7   | 2026-04-08 | 1M   | 128K | all                 | adaptive enabled disabled |
claude-opus-4-6   | 2026-02-05 | 200K | 128K | low medium high max | adaptive enabled disabled |
claude-sonnet-4-6 | 2026-02-04 | 200K | 64K  | low medium high max | adaptive enabled disabled |
claude-opus-4-5   | 2025-11-01 | 200K | 64K  | low medium high     | enabled disabled | 20251101
claude-haiku-4-5  | 2025-10-01 | 200K | 64K  |                     | enabled disabled | 20251001
claude-sonnet-4-5 | 2025-09-29 | 200K | 64K  |                     | enabled disabled | 20250929
"""


def _tokens(text: str) -> int:
    return int(text[:-1]) * (1_000_000 if text.endswith("M") else 1_000)


def _parse(table: str) -> tuple[ModelSpec, ...]:
    specs: list[ModelSpec] = []
    for row in table.strip().splitlines():
        model_id, date, context, output, effort, thinking, dated = (cell.strip() for cell in row.split("|"))
        # "claude-opus-4-5" -> line "opus", display name "Claude Opus 4.5"
        _, line, *version = model_id.split("-")
        specs.append(
            ModelSpec(
                id=model_id,
                display_name=f"Claude {line.capitalize()} {'.'.join(version)}",
                line=line,
                created_at=f"{date}T00:00:00Z",
                max_input_tokens=_tokens(context),
                max_tokens=_tokens(output),
                effort=frozenset(EFFORT_LEVELS if effort == "all" else effort.split()),
                thinking=frozenset(thinking.split()),
                aliases=(f"{model_id}-{dated}",) if dated else (),
            )
        )
    return tuple(specs)


MODELS = _parse(_TABLE)

_BY_NAME: dict[str, ModelSpec] = {name: spec for spec in MODELS for name in (spec.id, *spec.aliases)}


def find_model(name: str) -> ModelSpec | None:
    """The model a request's `model` names, accepting the dated ids of the older models."""
    return _BY_NAME.get(name)
