"""The emulator's deterministic tool-using model, shared by both APIs.

A prompt steers it with one marker: `[[emulator:agent STEP || STEP || ...]]`. Turn k of the conversation
(k = the assistant turns already in the request) plays STEP k; a turn past the last step answers with
text and ends. A STEP is calls joined by `&&`, each `name {json input}` (the input may be left out):
- a client tool the request offers (`read`, `glob`, `grep`): a tool call, and the turn stops for its result;
- `web-search`, `web-fetch`, `code-execution`: a server tool the request offers, run inside the turn; a step
  of server tools only then answers with text and ends the turn;
- `pause`: (Anthropic) the turn stops with `pause_turn` after the step's server tools; a continuation plays
  the next step;
- `errored`, `expired`: that turn's batch request comes back so (a sync call is not affected);
- `slow`: the batch holding that turn takes SLOW_FACTOR times the emulator's processing time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

AGENT_MARKER = re.compile(r"\[\[emulator:agent\s+(.*?)\]\]", re.DOTALL)
SERVER_TOOLS = ("web-search", "web-fetch", "code-execution")
BATCH_OUTCOMES = ("errored", "expired", "slow")
SLOW_FACTOR = 40


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    input: dict[str, object]


@dataclass(frozen=True, slots=True)
class Step:
    calls: tuple[Call, ...]
    pause: bool = False
    outcome: str | None = None

    @property
    def client(self) -> tuple[Call, ...]:
        return tuple(c for c in self.calls if c.name not in SERVER_TOOLS)

    @property
    def server(self) -> tuple[Call, ...]:
        return tuple(c for c in self.calls if c.name in SERVER_TOOLS)


def parse(text: str) -> tuple[Step, ...] | None:
    """The script a prompt carries, or None when it has no agent marker."""
    found = AGENT_MARKER.search(text)
    if found is None:
        return None
    steps = []
    for raw in found.group(1).split("||"):
        calls: list[Call] = []
        pause = False
        outcome = None
        for item in raw.split("&&"):
            item = item.strip()
            if not item:
                continue
            name, _, rest = item.partition(" ")
            if name == "pause":
                pause = True
                continue
            if name in BATCH_OUTCOMES:
                outcome = name
                continue
            try:
                value = json.loads(rest) if rest.strip() else {}
            except ValueError:
                value = {"raw": rest.strip()}
            calls.append(Call(name, value if isinstance(value, dict) else {"value": value}))
        steps.append(Step(tuple(calls), pause, outcome))
    return tuple(steps)


def without_marker(text: str) -> str:
    return AGENT_MARKER.sub("", text).strip()


def call_id(prefix: str, seed: str, step: int, index: int) -> str:
    digest = hashlib.sha256(f"{seed}\x00{step}\x00{index}".encode()).hexdigest()
    return f"{prefix}{digest[:24]}"


def signature(*parts: str) -> str:
    """A deterministic stand-in for the opaque signatures both APIs attach to reasoning."""
    return hashlib.sha256("\x00".join(("emulator-signature", *parts)).encode()).hexdigest()
