"""A response schema on batched agents, both providers: the constraint goes on every round's request (it
applies to the model's own text, not to its tool calls), and only the conversation's final answer is held
to it, into `json`, `<custom_id>.json` and `results.json`; a final answer that does not match is asked
again synchronously, with the same history, once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batch_arbiter.agents.rounds import Rounds, RunIdentity
from batch_arbiter.agents.store import Conversation, Store
from batch_arbiter.agents.workspace import Workspace
from batch_arbiter.core.conversation import CallResult, ConversationRequest, ToolCall
from batch_arbiter.emulator import Emulator
from batch_arbiter.providers.base import ProviderConfig, RunSpec
from batch_arbiter.providers.registry import make_provider
from batch_arbiter.run.state import STATE_FILE
from support import API_KEY, ProviderProfile, write_prompts

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "effort": {"type": "string", "enum": ["small", "medium", "large"]},
    },
    "required": ["title", "effort"],
    "additionalProperties": False,
}
SCRIPT = '[[emulator:agent read {"path": "notes.md"} || read {"path": "src/app.py"}]]'
FILES = {
    "notes.md": "Signals: users ask for faster nightly runs.\n",
    "src/app.py": "def main():\n    pass\n",
    "schema.json": json.dumps(SCHEMA),
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, FILES)
    return root


def wire_schema(provider: ProviderProfile, request: dict[str, Any]) -> Any:
    """The response schema one request carried on the wire (None: none)."""
    if provider.name == "anthropic":
        return ((request.get("output_config") or {}).get("format") or {}).get("schema")
    config = request.get("generationConfig") or request.get("generation_config") or {}
    return config.get("responseJsonSchema")


def batch_requests(provider: ProviderProfile, emulator: Emulator) -> list[dict[str, Any]]:
    found = []
    for call in emulator.calls(provider.create):
        if call.status != 200:
            continue
        if provider.name == "anthropic":
            found += [r["params"] for r in call.body["requests"]]
        else:
            found += [r["request"] for r in call.body["batch"]["inputConfig"]["requests"]["requests"]]
    return found


def history_length(provider: ProviderProfile, request: dict[str, Any]) -> int:
    return len(request["messages"] if provider.name == "anthropic" else request["contents"])


def results_json(ws: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((ws / "batch-results" / "results.json").read_text())
    return {row["custom_id"]: row for row in rows}


def test_the_schema_is_on_every_round_and_the_final_answer_is_validated(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    write_prompts(ws, {"prompts/idea.md": f"Propose one feature. {SCRIPT}", "prompts/quick.md": "Name one idea."})
    run = provider.run(
        ws, emulator, prompt_files="prompts/*.md", mode="batch", tools="read", response_schema="schema.json"
    )
    assert run.code == 0, run.log
    lines = run.by_id()
    idea, quick = lines["prompts_idea_md"], lines["prompts_quick_md"]
    assert (idea["status"], idea["turns"], idea["tool_calls"], idea["validation"]) == (
        "succeeded",
        3,
        {"read": 2},
        "valid",
    )
    assert (quick["turns"], quick["validation"]) == (1, "valid")
    # Every round's request carried the schema: the two tool-call turns as well as the final one.
    requests = batch_requests(provider, emulator)
    assert [history_length(provider, r) for r in requests] == [1, 1, 3, 5]
    assert all(wire_schema(provider, r) is not None for r in requests)
    assert emulator.calls(provider.sync) == []
    # The final answer, parsed and valid, in the line, `<custom_id>.json` and results.json.
    jsonschema.validate(idea["json"], SCHEMA)
    assert idea["json"] == json.loads(idea["text"])
    assert json.loads((ws / "batch-results" / "prompts_idea_md.json").read_text()) == idea["json"]
    rows = results_json(ws)
    assert rows["prompts_idea_md"] == {
        "custom_id": "prompts_idea_md",
        "source": "prompts/idea.md",
        "status": "succeeded",
        "json": idea["json"],
    }
    assert rows["prompts_quick_md"]["json"] == quick["json"]
    assert run.outputs["results-json"] == "batch-results/results.json"
    assert "2 valid, 0 invalid then fixed by a rerun, 0 invalid" in run.summary


def test_an_invalid_final_answer_is_asked_again_synchronously_and_fixed(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    write_prompts(ws, {"prompts/idea.md": f"Propose one feature. [[emulator:schema-invalid-batch]] {SCRIPT}"})
    run = provider.run(
        ws, emulator, prompt_files="prompts/*.md", mode="batch", tools="read", response_schema="schema.json"
    )
    assert run.code == 0, run.log
    line = run.by_id()["prompts_idea_md"]
    # Three turns answered; the final one's batch answer did not match and was paid for too.
    assert (line["status"], line["turns"], line["validation"], line["via"]) == ("succeeded", 3, "fixed", "batch+sync")
    jsonschema.validate(line["json"], SCHEMA)
    assert results_json(ws)["prompts_idea_md"]["json"] == line["json"]
    # The tool-call turns were never held to the schema: no rerun before the final turn.
    assert [history_length(provider, r) for r in batch_requests(provider, emulator)] == [1, 3, 5]
    sync = [c.body for c in emulator.calls(provider.sync) if c.body]
    assert len(sync) == 1
    # The rerun asked the final turn again: the same history, the same schema.
    assert history_length(provider, sync[0]) == 5 and wire_schema(provider, sync[0]) is not None
    usage = [t for t in transcript(ws) if t["type"] == "turn"]
    assert [t.get("validation") for t in usage] == [None, None, "invalid", "fixed"]
    assert "0 valid, 1 invalid then fixed by a rerun, 0 invalid" in run.summary


def test_a_final_answer_that_stays_invalid_is_errored(ws: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    write_prompts(ws, {"prompts/idea.md": f"Propose one feature. [[emulator:schema-invalid]] {SCRIPT}"})
    run = provider.run(
        ws, emulator, prompt_files="prompts/*.md", mode="batch", tools="read", response_schema="schema.json"
    )
    assert run.code == 1, run.log
    line = run.by_id()["prompts_idea_md"]
    assert (line["status"], line["validation"], line["json"], line["text"]) == ("errored", "invalid", None, None)
    assert line["error"]
    assert len([c for c in emulator.calls(provider.sync) if c.body]) == 1
    assert results_json(ws)["prompts_idea_md"]["json"] is None
    assert not (ws / "batch-results" / "prompts_idea_md.json").exists()
    # Both paid answers of the final turn are priced.
    assert line["cost_usd"] > 0


def transcript(ws: Path) -> list[dict[str, Any]]:
    lines = (ws / "batch-results" / "prompts_idea_md.transcript.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_resumed_run_keeps_the_schema_and_the_invalid_first_answer(
    ws: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    out = ws / "batch-results"
    prompt = f"Propose one feature. [[emulator:schema-invalid-batch]] {SCRIPT}"
    store = Store(out, {"provider": provider.name, "model": provider.model})
    request = ConversationRequest("idea", "prompts/idea.md", prompt, tools=("read",), response_schema=SCHEMA)
    store.conversations["idea"] = Conversation(request)
    store.save()
    identity = RunIdentity(out / STATE_FILE, provider.name, provider.model, "ideation", "2026-12-01T00:00:00")
    adapter = make_provider(provider.name, ProviderConfig(api_key=API_KEY, base_url=emulator.base_url))
    workspace = Workspace(ws)

    def run_tool(request: ConversationRequest, call: ToolCall) -> CallResult:
        result = workspace.call(call.name, dict(call.input))
        return CallResult(call.id, call.name, result.text, result.is_error)

    def rounds(store: Store) -> Rounds:
        return Rounds(
            adapter,
            RunSpec(model=provider.model),
            store,
            run_tool,
            identity,
            deadline=time.monotonic() + 600,
            poll_interval=0.02,
            max_turns=10,
            log=lambda m: None,
            warn=lambda m: None,
        )

    try:
        # Stopped once round 1 is on disk, as a kill between rounds would.
        original, saves = store.save, []

        def save_then_die() -> None:
            original()
            saves.append(1)
            if len(saves) == 1:
                raise KeyboardInterrupt

        store.save = save_then_die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            rounds(store).run(batch=True)
        again = Store.load(out, store.identity)
        assert again is not None and again.round == 2
        assert again.conversations["idea"].request.response_schema == SCHEMA
        result = rounds(again).run(batch=True)
        assert result.status == "succeeded"
        requests = batch_requests(provider, emulator)
        assert [history_length(provider, r) for r in requests] == [1, 3, 5]
        assert all(wire_schema(provider, r) == SCHEMA for r in requests)
        # The final batch answer was invalid, asked again synchronously: both on disk, both priced.
        conversation = Store.load(out, store.identity)
        assert conversation is not None
        idea = conversation.conversations["idea"]
        assert (idea.validation, [t.validation for t in idea.turns][-2:]) == ("fixed", ["invalid", "fixed"])
        jsonschema.validate(idea.json, SCHEMA)
    finally:
        adapter.close()
