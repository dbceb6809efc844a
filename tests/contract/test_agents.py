"""Batch rounds for both providers: conversations through the rounds engine with the real SDKs against
the emulator, tools run in a real workspace between rounds."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.agents.results import ConversationResults
from batch_arbiter.agents.rounds import Rounds, RunIdentity
from batch_arbiter.agents.store import Conversation, Store
from batch_arbiter.agents.workspace import Workspace
from batch_arbiter.core.conversation import CallResult, ConversationRequest, ToolCall
from batch_arbiter.emulator import Emulator
from batch_arbiter.providers.base import Provider, ProviderConfig, RunSpec
from batch_arbiter.providers.registry import make_provider, price_table
from batch_arbiter.run.state import STATE_FILE, RunState
from support import API_KEY, ProviderProfile

TODAY = date(2026, 12, 1)
THREE_TURNS = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"}]]'


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "notes.md").write_text("Ideas: faster rounds.\n")
    (root / "src" / "app.py").write_text("def main():\n    pass  # TODO: batch it\n")
    return root


@dataclass
class Setup:
    adapter: Provider
    store: Store
    identity: RunIdentity
    out: Path
    ws: Path
    spec: RunSpec

    def rounds(self, *, deadline: float = 600.0, max_turns: int = 10, on_timeout: str = "fallback") -> Rounds:
        workspace = Workspace(self.ws)

        def run_tool(request: ConversationRequest, call: ToolCall) -> CallResult:
            result = workspace.call(call.name, dict(call.input))
            return CallResult(call.id, call.name, result.text, result.is_error)

        rounds = Rounds(
            self.adapter,
            self.spec,
            self.store,
            run_tool,
            self.identity,
            deadline=time.monotonic() + deadline,
            poll_interval=0.02,
            max_turns=max_turns,
            on_timeout=on_timeout,
            log=lambda m: None,
            warn=lambda m: None,
        )
        rounds.cancel_grace = 5.0
        return rounds

    def results(self) -> dict[str, dict[str, Any]]:
        writer = ConversationResults(self.out, price_table(), self.spec.model, TODAY)
        writer.write(self.store)
        lines = (self.out / "results.jsonl").read_text().splitlines()
        return {r["custom_id"]: r for r in map(json.loads, lines)}

    def reload(self) -> Store:
        store = Store.load(self.out, self.store.identity)
        assert store is not None
        self.store = store
        return store


def setup(p: ProviderProfile, emulator: Emulator, ws: Path, prompts: dict[str, str], tools: tuple[str, ...]) -> Setup:
    out = ws / "batch-results"
    store = Store(out, {"provider": p.name, "model": p.model})
    for cid, prompt in prompts.items():
        request = ConversationRequest(cid, f"prompts/{cid}.md", prompt, tools=tools)
        store.conversations[cid] = Conversation(request)
    store.save()
    identity = RunIdentity(
        out / STATE_FILE, p.name, p.model, "ideation", "2026-12-01T00:00:00", custom_ids=list(prompts)
    )
    adapter = make_provider(p.name, ProviderConfig(api_key=API_KEY, base_url=emulator.base_url))
    return Setup(adapter, store, identity, out, ws, RunSpec(model=p.model))


@pytest.fixture
def made() -> Iterator[list[Setup]]:
    made: list[Setup] = []
    yield made
    for s in made:
        s.adapter.close()


def test_three_turns_and_one_turn_in_rounds(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    s = setup(provider, emulator, ws, {"deep": f"Study the repo. {THREE_TURNS}", "quick": "Say hi."}, ("read", "grep"))
    made.append(s)
    result = s.rounds().run(batch=True)
    assert (result.mode, result.status) == ("batch", "succeeded")
    # Round 1 holds both conversations; rounds 2 and 3 only the one still using tools.
    assert [(r.number, r.conversations, r.via, r.tool_calls) for r in result.rounds] == [
        (1, 2, "batch", 1),
        (2, 1, "batch", 1),
        (3, 1, "batch", 0),
    ]
    assert len(emulator.calls(provider.create)) == 3 and emulator.calls(provider.sync) == []
    lines = s.results()
    deep, quick = lines["deep"], lines["quick"]
    assert (deep["turns"], deep["tool_calls"], deep["via"], deep["status"]) == (
        3,
        {"grep": 1, "read": 1},
        "batch",
        "succeeded",
    )
    assert "after 2 tool results (0 errors)" in str(deep["text"])
    assert (quick["turns"], quick["tool_calls"]) == (1, {})
    # The file was read and the grep found the TODO, as the model was told.
    transcript = [json.loads(line) for line in (s.out / "deep.transcript.jsonl").read_text().splitlines()]
    outputs = [r["content"] for t in transcript if t["type"] == "tool_results" for r in t["results"]]
    assert outputs[0].startswith("Ideas: faster rounds.")
    assert "src/app.py:2:" in outputs[1]
    assert [t["type"] for t in transcript] == ["request", "turn", "tool_results", "turn", "tool_results", "turn"]
    assert (s.out / "deep.md").read_text() == deep["text"]
    # Costs by hand, turn by turn, from the bundled table's row for the model on TODAY.
    turns = [t for t in transcript if t["type"] == "turn"]
    assert deep["cost_usd"] == pytest.approx(sum(by_hand(provider, t["usage"], batch=True) for t in turns), abs=1e-8)
    assert deep["sync_cost_usd"] == pytest.approx(sum(by_hand(provider, t["usage"], batch=False) for t in turns))
    assert deep["usage"]["output_tokens"] == sum(t["usage"]["output_tokens"] for t in turns)


def test_paths_outside_the_workspace_are_error_results(
    emulator: Emulator, provider: ProviderProfile, ws: Path, tmp_path: Path, made: list[Setup]
) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    os.symlink(secret, ws / "link.txt")
    script = (
        '[[emulator:agent read {"path": "../../etc/passwd"} && read {"path": "/etc/hostname"} '
        '&& read {"path": "link.txt"}]]'
    )
    s = setup(provider, emulator, ws, {"escape": f"Read these. {script}"}, ("read",))
    made.append(s)
    result = s.rounds().run(batch=True)
    assert result.status == "succeeded"
    line = s.results()["escape"]
    assert "after 3 tool results (3 errors)" in str(line["text"])
    transcript = (s.out / "escape.transcript.jsonl").read_text()
    assert "TOP-SECRET-CONTENT" not in transcript and "root:" not in transcript
    results = next(json.loads(x) for x in transcript.splitlines() if '"tool_results"' in x)["results"]
    assert all(r["is_error"] for r in results)


def test_max_turns_keeps_the_last_answer_incomplete(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    script = '[[emulator:agent read {"path": "notes.md"} || read {"path": "notes.md"} || read {"path": "notes.md"}]]'
    s = setup(provider, emulator, ws, {"long": f"Keep reading. {script}"}, ("read",))
    made.append(s)
    result = s.rounds(max_turns=2).run(batch=True)
    assert result.status == "partial" and len(result.rounds) == 2
    line = s.results()["long"]
    assert (line["status"], line["stop_reason"], line["turns"]) == ("incomplete", "max_turns", 2)
    assert line["text"] == "Let me look that up."


def test_a_later_turn_that_errors_retries_in_a_batch_once_then_sync(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    script = '[[emulator:agent read {"path": "notes.md"} || errored]]'
    s = setup(provider, emulator, ws, {"flaky": f"Go. {script}"}, ("read",))
    made.append(s)
    result = s.rounds().run(batch=True)
    assert result.status == "succeeded"
    # Round 2's turn errored in the batch, round 3 tried it in a batch again, then it ran synchronously.
    assert [r.via for r in result.rounds] == ["batch", "batch", "batch"]
    assert len(emulator.calls(provider.create)) == 3 and len(emulator.calls(provider.sync)) == 1
    line = s.results()["flaky"]
    assert (line["via"], line["turns"]) == ("batch+sync", 2)


def test_deadline_in_round_two_falls_back_keeping_round_one(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    script = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"} && slow]]'
    s = setup(provider, emulator, ws, {"late": f"Go. {script}", "early": "Hi."}, ("read", "grep"))
    made.append(s)
    emulator.config.processing_seconds = 0.1
    result = s.rounds(deadline=1.0).run(batch=True)
    assert result.status == "succeeded" and result.mode == "batch+fallback"
    assert [r.via for r in result.rounds][:2] == ["batch", "batch"]
    lines = s.results()
    # Round 1 kept from the batch; round 2 canceled at the deadline and every later turn synchronous.
    assert lines["early"]["via"] == "batch" and lines["late"]["via"] == "batch+sync"
    assert lines["late"]["turns"] == 3
    assert len(emulator.calls(provider.cancel)) == 1
    # Nothing paid twice: exactly the two unanswered turns ran synchronously.
    assert len(emulator.calls(provider.sync)) == 2


def test_deadline_with_leave_then_a_later_run_continues(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    script = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"} && slow]]'
    s = setup(provider, emulator, ws, {"late": f"Go. {script}"}, ("read", "grep"))
    made.append(s)
    emulator.config.processing_seconds = 0.1
    first = s.rounds(deadline=1.0, on_timeout="leave").run(batch=True)
    assert first.status == "pending" and first.mode == "pending"
    state = RunState.read(s.out / STATE_FILE)
    assert state is not None and state.status == "pending" and len(state.batch_ids) == 1
    assert emulator.calls(provider.cancel) == [] and emulator.calls(provider.sync) == []
    assert s.results()["late"]["status"] == "pending"
    # A later run: the same state on disk, the round left in flight collected, nothing submitted again.
    time.sleep(4.0)
    store = s.reload()
    assert store.round == 2
    creates = len(emulator.calls(provider.create))
    second = s.rounds().run(batch=True, batch_ids=state.batch_ids)
    assert second.status == "succeeded"
    assert len(emulator.calls(provider.create)) == creates + 1  # only round 3 was submitted
    line = s.results()["late"]
    assert (line["turns"], line["via"], line["status"]) == (3, "batch", "succeeded")


def test_killed_between_rounds_resubmits_nothing_answered(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    s = setup(provider, emulator, ws, {"deep": f"Go. {THREE_TURNS}", "quick": "Hi."}, ("read", "grep"))
    made.append(s)
    rounds = s.rounds()
    # Stop after round 1 is on disk, as a kill between rounds would.
    original = s.store.save
    saves = 0

    def save_then_die() -> None:
        nonlocal saves
        original()
        saves += 1
        if saves == 1:
            raise KeyboardInterrupt

    s.store.save = save_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        rounds.run(batch=True)
    assert len(emulator.calls(provider.create)) == 1
    store = s.reload()
    assert store.round == 2 and store.conversations["quick"].status == "done"
    result = s.rounds().run(batch=True)
    assert result.status == "succeeded"
    # Rounds 2 and 3 only, each with the one conversation still going: no answered turn went again.
    assert len(emulator.calls(provider.create)) == 3
    assert [batch_size(provider, emulator, i) for i in (1, 2)] == [1, 1]


# USD per million tokens (input, cache read, 5-minute cache write, output), model-pricing.tsv on TODAY.
RATES = {"anthropic": (4.0, 0.20, 5.0, 20.0), "gemini": (4.0, 0.20, 4.0, 20.0)}


def by_hand(p: ProviderProfile, usage: dict[str, int], *, batch: bool) -> float:
    rate_in, rate_read, rate_write, rate_out = RATES[p.name]
    one_hour = usage["cache_creation_1h_tokens"] if batch else 0
    five_minutes = usage["cache_creation_tokens"] - one_hour
    # A 1-hour cache write costs twice the input rate; Anthropic halves cache reads in a batch, Gemini not.
    tokens = usage["input_tokens"] * rate_in + five_minutes * rate_write + one_hour * 2 * rate_in
    tokens += usage["output_tokens"] * rate_out
    reads = usage["cache_read_tokens"] * rate_read
    if batch:
        tokens /= 2
        reads = reads / 2 if p.name == "anthropic" else reads
    return (tokens + reads) / 1_000_000


def batch_size(p: ProviderProfile, emulator: Emulator, index: int) -> int:
    body = emulator.calls(p.create)[index].body
    if p.name == "anthropic":
        return len(body["requests"])
    return len(body["batch"]["inputConfig"]["requests"]["requests"])


def test_a_split_round_left_half_ended_is_applied_once_by_the_later_run(
    emulator: Emulator, provider: ProviderProfile, ws: Path, made: list[Setup]
) -> None:
    slow = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"} && slow]]'
    fast = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"}]]'
    s = setup(provider, emulator, ws, {"a-slow": f"Go. {slow}", "b-fast": f"Go. {fast}"}, ("read", "grep"))
    made.append(s)
    # One conversation a batch: round 2's fast batch ends, its slow one is still running at the deadline.
    s.adapter.max_batch_requests = 1
    emulator.config.processing_seconds = 0.1
    first = s.rounds(deadline=1.5, on_timeout="leave").run(batch=True)
    assert first.status == "pending"
    state = RunState.read(s.out / STATE_FILE)
    assert state is not None and len(state.batch_ids) == 2
    time.sleep(4.0)
    s.reload()
    second = s.rounds().run(batch=True, batch_ids=state.batch_ids)
    assert second.status == "succeeded"
    lines = s.results()
    # Each turn once: the fast conversation's round-2 answer, kept from the first run, is not applied twice.
    assert lines["b-fast"]["turns"] == 3 and lines["b-fast"]["tool_calls"] == {"grep": 1, "read": 1}
    assert lines["a-slow"]["turns"] == 3
    assert emulator.calls(provider.sync) == []
