"""Conversations that take several model turns: tool definitions, tool calls and results, and what one
turn brought back, in provider-neutral records. Only the assistant's own content stays in the provider's
wire form (`Exchange.assistant`): it goes back to the API byte for byte, so thinking blocks and thought
signatures survive every round unmodified."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batch_arbiter.core.records import Outcome, PromptRequest
from batch_arbiter.core.tools import TOOLS, ToolSpec

# Why a turn ended, on common names. `tool_use`: the model waits for client tool results; `pause_turn`:
# the provider's server-side tool loop stopped early and the turn is to be continued as it is.
END_TURN = "end_turn"
TOOL_USE = "tool_use"
PAUSE_TURN = "pause_turn"
MAX_TOKENS = "max_tokens"
REFUSAL = "refusal"
# Set by the rounds engine, never by a provider: the conversation ran out of `max-turns`.
MAX_TURNS = "max_turns"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One client tool call the model asked for; `id` pairs it with its result."""

    id: str
    name: str
    input: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The call as transcripts and state files keep it."""
        return {"id": self.id, "name": self.name, "input": dict(self.input)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """A call read back from a state file."""
        raw = data.get("input")
        return cls(str(data["id"]), str(data["name"]), raw if isinstance(raw, dict) else {})


@dataclass(frozen=True, slots=True)
class CallResult:
    """What running a tool call gave, as the model will see it; `is_error` for a refused or failed call."""

    call_id: str
    name: str
    content: str
    is_error: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The result as transcripts and state files keep it."""
        return {"call_id": self.call_id, "name": self.name, "content": self.content, "is_error": self.is_error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallResult:
        """A result read back from a state file."""
        return cls(str(data["call_id"]), str(data["name"]), str(data["content"]), bool(data.get("is_error")))


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered turn as the next request replays it: the assistant's content in the provider's own
    wire form, and the tool results that answer its calls (none after a `pause_turn`)."""

    assistant: tuple[Mapping[str, Any], ...]
    results: tuple[CallResult, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The exchange as state files keep it."""
        return {"assistant": [dict(b) for b in self.assistant], "results": [r.as_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exchange:
        """An exchange read back from a state file."""
        return cls(
            tuple(data.get("assistant") or ()),
            tuple(CallResult.from_dict(r) for r in data.get("results") or ()),
        )


@dataclass(frozen=True, slots=True)
class ConversationRequest(PromptRequest):
    """The next turn of a conversation: the first request's messages, every exchange so far, and the tools
    (`tools`, by catalogue name). Tools and system prompt stay the same in every round, so each request's
    prefix stays cacheable."""

    history: tuple[Exchange, ...] = ()

    def text_bytes(self) -> int:
        """What the request weighs in a batch body: the prompt, every exchange and the tool definitions."""
        extra = sum(len(json.dumps(e.as_dict(), ensure_ascii=False).encode("utf-8")) for e in self.history)
        extra += sum(len(t.description) + len(json.dumps(dict(t.input_schema or {}))) for t in self.specs)
        return PromptRequest.text_bytes(self) + extra

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The conversation's tools as the catalogue describes them, in the catalogue's order."""
        return tuple(spec for name, spec in TOOLS.items() if name in self.tools)


@dataclass(slots=True)
class TurnOutcome(Outcome):
    """A provider's answer to one turn: the outcome plus why the turn stopped, the assistant content to
    replay, the client tool calls to run, and the server tools the provider ran (by kind, for their fees)."""

    # Why the turn ended on common names (END_TURN, TOOL_USE, PAUSE_TURN, MAX_TOKENS, REFUSAL); the
    # provider's own wording stays in `stop_reason`.
    turn_end: str | None = None
    assistant: tuple[Mapping[str, Any], ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    server_tool_use: dict[str, int] = field(default_factory=dict)
