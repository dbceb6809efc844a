"""What a multi-turn run keeps on disk between rounds: every conversation as it stands, and each round's
answers the moment they arrive. A run killed at any point leaves enough for the next one to go on
without resubmitting a turn that was answered."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_arbiter.core.conversation import (
    ConversationRequest,
    Exchange,
    ToolCall,
    TurnOutcome,
)
from batch_arbiter.core.records import Outcome, Status, Usage, Validation, Via
from batch_arbiter.core.tools import TOOLS
from batch_arbiter.files import open_own, write_own
from batch_arbiter.run.results import Totals

CONVERSATIONS_FILE = "conversations.json"
ROUNDS_DIR = "rounds"

# Where a conversation stands: waiting for its next turn, finished with an answer, cut off by max-turns,
# failed, or left with the provider (`on-timeout: leave`).
ACTIVE, DONE, INCOMPLETE, FAILED = "active", "done", "incomplete", "failed"
# Turn statuses that came back with an answer (whole, or cut short at the output limit), paid for.
ANSWERED = frozenset({Status.SUCCEEDED, Status.INCOMPLETE})


@dataclass
class Turn:
    """One answered (or failed) model call of a conversation, as its results line and transcript tell it."""

    round: int
    via: str
    status: str
    tier: str | None
    model: str | None
    stop_reason: str | None
    usage: Usage
    server_tool_use: dict[str, int] = field(default_factory=dict)
    tool_calls: list[str] = field(default_factory=list)
    error: str | None = None
    # "invalid": a final answer that did not match the response schema, paid for and asked again.
    validation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The turn as state files keep it."""
        return {
            "round": self.round,
            "via": self.via,
            "status": self.status,
            "tier": self.tier,
            "model": self.model,
            "stop_reason": self.stop_reason,
            "usage": self.usage.as_dict(),
            "server_tool_use": self.server_tool_use,
            "tool_calls": self.tool_calls,
            "error": self.error,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """A turn read back from a state file."""
        return cls(
            round=int(data["round"]),
            via=str(data["via"]),
            status=str(data["status"]),
            tier=data.get("tier"),
            model=data.get("model"),
            stop_reason=data.get("stop_reason"),
            usage=Usage(**data.get("usage") or {}),
            server_tool_use=dict(data.get("server_tool_use") or {}),
            tool_calls=list(data.get("tool_calls") or []),
            error=data.get("error"),
            validation=data.get("validation"),
        )


@dataclass
class Conversation:
    """One conversation: its first request, every exchange since, the turns it took and where it stands."""

    request: ConversationRequest
    history: list[Exchange] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    status: str = ACTIVE
    # The current turn already failed once in a batch round: the next failure runs it synchronously.
    retried: bool = False
    text: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    # The final answer held to the response schema: its parsed value, and valid / fixed / invalid.
    json: Any = None
    validation: str | None = None

    @property
    def custom_id(self) -> str:
        """The conversation's id: the same custom id in every round's batch."""
        return self.request.custom_id

    @property
    def answered(self) -> int:
        """Model calls that came back with an answer: what `max-turns` counts."""
        return sum(1 for t in self.turns if t.status in ANSWERED)

    def next_request(self) -> ConversationRequest:
        """The request for this conversation's next turn: everything so far, same tools, same system prompt."""
        return ConversationRequest(
            self.request.custom_id,
            self.request.source,
            self.request.content,
            system=self.request.system,
            max_tokens=self.request.max_tokens,
            tools=self.request.tools,
            # The same constraint on every turn: it applies to the model's text, never to its tool calls.
            response_schema=self.request.response_schema,
            history=tuple(self.history),
        )

    def as_dict(self) -> dict[str, Any]:
        """The conversation as `conversations.json` keeps it."""
        r = self.request
        return {
            "custom_id": r.custom_id,
            "source": r.source,
            "content": r.content if isinstance(r.content, str) else list(r.content),
            "system": r.system,
            "max_tokens": r.max_tokens,
            "tools": list(r.tools),
            "response_schema": None if r.response_schema is None else dict(r.response_schema),
            "history": [e.as_dict() for e in self.history],
            "turns": [t.as_dict() for t in self.turns],
            "status": self.status,
            "retried": self.retried,
            "text": self.text,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "json": self.json,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """A conversation read back from `conversations.json`."""
        content = data["content"]
        request = ConversationRequest(
            str(data["custom_id"]),
            str(data["source"]),
            content if isinstance(content, str) else tuple(content),
            system=data.get("system"),
            max_tokens=data.get("max_tokens"),
            tools=tuple(str(name) for name in data.get("tools") or () if str(name) in TOOLS),
            response_schema=data.get("response_schema"),
        )
        return cls(
            request=request,
            history=[Exchange.from_dict(e) for e in data.get("history") or ()],
            turns=[Turn.from_dict(t) for t in data.get("turns") or ()],
            status=str(data.get("status") or ACTIVE),
            retried=bool(data.get("retried")),
            text=data.get("text"),
            stop_reason=data.get("stop_reason"),
            error=data.get("error"),
            json=data.get("json"),
            validation=data.get("validation"),
        )


class Store:
    """`conversations.json` (every conversation, rewritten atomically after each round) and
    `rounds/round-N.jsonl` (each turn's answer appended the moment it arrives)."""

    def __init__(self, out_dir: Path, identity: dict[str, str]) -> None:
        self.out_dir = out_dir
        self.path = out_dir / CONVERSATIONS_FILE
        self.rounds_dir = out_dir / ROUNDS_DIR
        # Provider, model and workload: a store of another run is never continued as this one's.
        self.identity = identity
        self.round = 1
        self.conversations: dict[str, Conversation] = {}

    @classmethod
    def load(cls, out_dir: Path, identity: dict[str, str]) -> Store | None:
        """The store an earlier run of the same provider and model left unfinished; None otherwise."""
        store = cls(out_dir, identity)
        try:
            data = json.loads(store.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("identity") != identity:
                return None
            store.round = int(data["round"])
            for item in data["conversations"]:
                conversation = Conversation.from_dict(item)
                store.conversations[conversation.custom_id] = conversation
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return store

    @property
    def unfinished(self) -> bool:
        """Whether any conversation still waits for a turn."""
        return any(c.status == ACTIVE for c in self.conversations.values())

    def save(self) -> None:
        """Write `conversations.json` atomically: a kill mid-write leaves the previous version."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "identity": self.identity,
            "round": self.round,
            "conversations": [c.as_dict() for c in self.conversations.values()],
        }
        tmp = self.path.with_suffix(".tmp")
        write_own(tmp, json.dumps(data, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)

    def round_path(self, number: int) -> Path:
        """Where round `number`'s answers are appended as they arrive."""
        return self.rounds_dir / f"round-{number}.jsonl"

    def arrived(self, number: int) -> Iterator[tuple[TurnOutcome, Via, tuple[Outcome, Via] | None]]:
        """The answers of round `number` already on disk (a run stopped before it applied them), each with
        the earlier answer of the same turn that did not match the response schema, if there was one."""
        try:
            lines = self.round_path(number).read_text(encoding="utf-8").split("\n")
        except OSError:
            return
        for line in lines:
            try:
                data = json.loads(line)
                outcome, via = outcome_from_dict(data), Via(data["via"])
                earlier = data.get("first")
                first = None if earlier is None else (outcome_from_dict(earlier), Via(earlier["via"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill: its turn is collected again
            if outcome.status is not Status.PENDING:
                yield outcome, via, first


class RoundFile:
    """The engine's sink for one round: each outcome appended (and flushed) to the round's file the moment
    it arrives, and kept for the rounds engine to apply once the round ends."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.totals = Totals()
        self.written: set[str] = set()
        self.outcomes: dict[str, tuple[Outcome, Via]] = {}
        # A final answer that did not match the response schema, by custom id: the sync rerun's line holds it.
        self.firsts: dict[str, tuple[Outcome, Via]] = {}
        # Appended: answers an interrupted run of this round left stay where they are.
        self._fh = open_own(path, "a")

    def keep(self, outcome: Outcome, via: Via, first: tuple[Outcome, Via] | None = None) -> None:
        """An answer an earlier run already put on disk: known, so the engine never asks for it again."""
        if first is not None:
            self.firsts[outcome.custom_id] = first
        self._count(outcome, via)

    def write(self, outcome: Outcome, source: str, via: Via, *, first: tuple[Outcome, Via] | None = None) -> None:
        """Append one turn's outcome and flush it: a paid answer is on disk before anything else happens.
        `first`: the same turn's earlier answer that did not match the response schema (paid for too)."""
        del source
        if outcome.custom_id in self.written:
            raise ValueError(f"turn for {outcome.custom_id} written twice")
        line = {**outcome_as_dict(outcome), "via": str(via)}
        if first is not None:
            line["first"] = {**outcome_as_dict(first[0]), "via": str(first[1])}
            self.firsts[outcome.custom_id] = first
        self._fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._count(outcome, via)

    def _count(self, outcome: Outcome, via: Via) -> None:
        self.written.add(outcome.custom_id)
        self.outcomes[outcome.custom_id] = (outcome, via)
        record = {
            "status": str(outcome.status),
            "via": str(via),
            "tier": outcome.tier,
            "model": outcome.model,
            "usage": outcome.usage.as_dict(),
            "cost_usd": 0.0,
            "sync_cost_usd": 0.0,
        }
        self.totals.count(record, outcome.usage)

    def flush(self) -> None:
        """Every line is flushed as it is written."""
        self._fh.flush()

    def close(self) -> None:
        """Close the round's file."""
        self._fh.close()


def outcome_as_dict(outcome: Outcome) -> dict[str, Any]:
    """A turn's outcome as a round file keeps it."""
    data: dict[str, Any] = {
        "custom_id": outcome.custom_id,
        "status": str(outcome.status),
        "model": outcome.model,
        "text": outcome.text,
        "usage": outcome.usage.as_dict(),
        "error": outcome.error,
        "tier": outcome.tier,
        "stop_reason": outcome.stop_reason,
        "json": outcome.json,
        "validation": None if outcome.validation is None else str(outcome.validation),
    }
    if isinstance(outcome, TurnOutcome):
        data.update(
            turn_end=outcome.turn_end,
            assistant=[dict(b) for b in outcome.assistant],
            tool_calls=[c.as_dict() for c in outcome.tool_calls],
            server_tool_use=outcome.server_tool_use,
        )
    return data


def outcome_from_dict(data: dict[str, Any]) -> TurnOutcome:
    """A turn's outcome read back from a round file."""
    validation = data.get("validation")
    return TurnOutcome(
        str(data["custom_id"]),
        Status(data["status"]),
        data.get("model"),
        data.get("text"),
        Usage(**data.get("usage") or {}),
        data.get("error"),
        data.get("tier"),
        stop_reason=data.get("stop_reason"),
        turn_end=data.get("turn_end"),
        assistant=tuple(data.get("assistant") or ()),
        tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
        server_tool_use=dict(data.get("server_tool_use") or {}),
        json=data.get("json"),
        validation=None if validation is None else Validation(validation),
    )
