"""Conversations through each provider's adapter: tool definitions, tool calls parsed, tool results sent
back, server tools and their usage, pause_turn, and thinking blocks / thought signatures replayed
unmodified. Real SDKs over HTTP against the emulator, synchronously and in batches."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import anthropic

from batch_arbiter.core.conversation import CallResult, ConversationRequest, Exchange, TurnOutcome
from batch_arbiter.core.records import Status
from batch_arbiter.core.tools import TOOLS as CATALOGUE
from batch_arbiter.core.tools import ToolSpec
from batch_arbiter.emulator import Emulator
from batch_arbiter.providers.base import BatchState, Provider, ProviderConfig, RunSpec
from batch_arbiter.providers.registry import make_provider
from support import API_KEY, ProviderProfile

TOOLS = (CATALOGUE["read"], CATALOGUE["grep"])
SCHEMA = dict(CATALOGUE["read"].input_schema or {})
SCRIPT = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO"} && read {"path": "a.py"}]]'


def connect(p: ProviderProfile, emulator: Emulator) -> Provider:
    return make_provider(p.name, ProviderConfig(api_key=API_KEY, base_url=emulator.base_url))


def ask(prompt: str, tools: tuple[ToolSpec, ...] = TOOLS, system: str | None = "Be brief.") -> ConversationRequest:
    return ConversationRequest("conv", "prompts/conv.md", prompt, system=system, tools=tuple(t.name for t in tools))


def answer(outcome: TurnOutcome, *, error: bool = False) -> Exchange:
    results = tuple(CallResult(c.id, c.name, f"contents of {c.input}", is_error=error) for c in outcome.tool_calls)
    return Exchange(outcome.assistant, results)


def sync_turn(provider: Provider, request: ConversationRequest, spec: RunSpec) -> TurnOutcome:
    outcome = provider.run_sync(request, spec)
    assert isinstance(outcome, TurnOutcome), outcome
    assert outcome.status is Status.SUCCEEDED, outcome.error
    return outcome


def test_three_turns_with_client_tools_sync(emulator: Emulator, provider: ProviderProfile) -> None:
    adapter = connect(provider, emulator)
    spec = RunSpec(model=provider.model, effort=provider.effort)
    request = ask(f"Review the repository. {SCRIPT}")
    first = sync_turn(adapter, request, spec)
    assert first.turn_end == "tool_use"
    assert [(c.name, dict(c.input)) for c in first.tool_calls] == [("read", {"path": "notes.md"})]
    request = replace(request, history=(answer(first),))
    second = sync_turn(adapter, request, spec)
    assert second.turn_end == "tool_use"
    assert [c.name for c in second.tool_calls] == ["grep", "read"]
    request = replace(request, history=(*request.history, answer(second, error=True)))
    third = sync_turn(adapter, request, spec)
    assert third.turn_end == "end_turn" and third.tool_calls == ()
    # The model saw all three results, two of them errors, through the API's own tool result shape.
    assert "after 3 tool results (2 errors)" in (third.text or "")
    assert third.usage.input_tokens + third.usage.cache_read_tokens > first.usage.input_tokens
    adapter.close()


def test_tools_on_the_wire(emulator: Emulator, provider: ProviderProfile) -> None:
    adapter = connect(provider, emulator)
    spec = RunSpec(model=provider.model)
    kinds = ("web-search", "web-fetch", "code-execution")
    tools = (*TOOLS, *(CATALOGUE[name] for name in kinds))
    first = sync_turn(adapter, ask(SCRIPT, tools), spec)
    body = emulator.calls(provider.sync)[-1].body
    if provider.name == "anthropic":
        assert body["tools"][:2] == [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema or {})} for t in TOOLS
        ]
        assert [t.get("type") for t in body["tools"][2:]] == [
            "web_search_20260318",
            "web_fetch_20260318",
            "code_execution_20260521",
        ]
    else:
        declarations = next(t["functionDeclarations"] for t in body["tools"] if "functionDeclarations" in t)
        assert [d["name"] for d in declarations] == ["read", "grep"]
        # Proto JSON takes either spelling of a field; the SDK sends this one in snake case.
        schema = declarations[0].get("parametersJsonSchema", declarations[0].get("parameters_json_schema"))
        assert schema == SCHEMA
        server = sorted(key for t in body["tools"] for key in t if key != "functionDeclarations")
        assert server == ["codeExecution", "googleSearch", "urlContext"]
    # The second turn replays the first one's content and answers its call 1:1.
    sync_turn(adapter, replace(ask(SCRIPT, tools), history=(answer(first),)), spec)
    body = emulator.calls(provider.sync)[-1].body
    if provider.name == "anthropic":
        replayed, results = body["messages"][1], body["messages"][2]
        assert replayed == {"role": "assistant", "content": list(first.assistant)}
        assert results["content"][0]["type"] == "tool_result"
        assert results["content"][0]["tool_use_id"] == first.tool_calls[0].id
        # The newest block carries the breakpoint; the one before it no longer does.
        assert results["content"][-1]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" not in str(body["messages"][0])
    else:
        replayed, results = body["contents"][1], body["contents"][2]
        assert replayed["role"] == "model"
        call = next(p for p in replayed["parts"] if "functionCall" in p)
        assert call["thoughtSignature"] == next(p for p in first.assistant if "functionCall" in p)["thoughtSignature"]
        response = results["parts"][0]["functionResponse"]
        assert response["name"] == "read" and response["id"] == first.tool_calls[0].id
        assert response["response"] == {"output": "contents of {'path': 'notes.md'}"}
    adapter.close()


def test_a_replay_without_the_signature_is_refused(emulator: Emulator, provider: ProviderProfile) -> None:
    """The emulator holds replays to what the real APIs require: unmodified assistant content."""
    adapter = connect(provider, emulator)
    spec = RunSpec(model=provider.model)
    first = sync_turn(adapter, ask(SCRIPT), spec)
    if provider.name == "anthropic":
        # Thinking blocks must come back exactly as they were signed.
        client = anthropic.Anthropic(api_key=API_KEY, base_url=emulator.base_url)
        message = client.messages.create(
            model=provider.model,
            max_tokens=2048,
            thinking={"type": "adaptive"},
            tools=[{"name": "read", "description": "Read", "input_schema": SCHEMA}],
            messages=[{"role": "user", "content": SCRIPT}],
        )
        content: list[dict[str, Any]] = [b.to_dict() for b in message.content]
        assert content[0]["type"] == "thinking"
        first = TurnOutcome("conv", Status.SUCCEEDED, assistant=tuple(content), tool_calls=first.tool_calls)
        first = replace(first, tool_calls=tuple(replace(c, id=str(content[-1]["id"])) for c in first.tool_calls))
        kept = sync_turn(adapter, replace(ask(SCRIPT), history=(answer(first),)), spec)
        assert kept.turn_end == "tool_use"
        tampered: list[dict[str, Any]] = [{**content[0], "thinking": "edited"}, *content[1:]]
    else:
        tampered = [{k: v for k, v in p.items() if k != "thoughtSignature"} for p in first.assistant]
    broken = Exchange(tuple(tampered), answer(first).results)
    refused = adapter.run_sync(replace(ask(SCRIPT), history=(broken,)), spec)
    assert refused.status is Status.ERRORED
    assert ("signature" in (refused.error or "")) or ("thought_signature" in (refused.error or ""))
    adapter.close()


def wait_ended(adapter: Provider, batch_id: str) -> None:
    for _ in range(200):
        if adapter.status(batch_id).state is BatchState.ENDED:
            return
        time.sleep(0.02)
    raise AssertionError("batch did not end")


def test_turns_in_batches(emulator: Emulator, provider: ProviderProfile) -> None:
    """Round by round: every conversation's next turn in one batch, tool results sent in the next."""
    adapter = connect(provider, emulator)
    spec = RunSpec(model=provider.model)
    conversations = {
        "multi": replace(ask(f"Dig in. {SCRIPT}"), custom_id="multi"),
        "single": replace(ask("Just answer."), custom_id="single"),
    }
    finished: dict[str, TurnOutcome] = {}
    for _ in range(4):
        if not conversations:
            break
        batch_id = adapter.submit(list(conversations.values()), spec)
        wait_ended(adapter, batch_id)
        for outcome in adapter.results(batch_id):
            assert isinstance(outcome, TurnOutcome) and outcome.status is Status.SUCCEEDED
            request = conversations[outcome.custom_id]
            if outcome.turn_end == "tool_use":
                conversations[outcome.custom_id] = replace(request, history=(*request.history, answer(outcome)))
            else:
                finished[outcome.custom_id] = outcome
                del conversations[outcome.custom_id]
    assert set(finished) == {"multi", "single"}
    assert "after 3 tool results (0 errors)" in (finished["multi"].text or "")
    assert "after 0 tool results" in (finished["single"].text or "")
    if provider.name == "anthropic":
        # Round N+1 read round N's prefix from the cache: the breakpoint moved to the newest block.
        assert finished["multi"].usage.cache_read_tokens > 0
        assert finished["multi"].usage.cache_creation_1h_tokens > 0
    adapter.close()


def test_server_tools_and_pause_turn(emulator: Emulator, provider: ProviderProfile) -> None:
    adapter = connect(provider, emulator)
    spec = RunSpec(model=provider.model)
    tools = (CATALOGUE["web-search"], CATALOGUE["web-fetch"])
    script = '[[emulator:agent web-search {"query": "batch apis"} && pause || web-fetch {"url": "https://x.test"}]]'
    request = ask(f"Research. {script}", tools)
    first = sync_turn(adapter, request, spec)
    if provider.name == "anthropic":
        assert first.turn_end == "pause_turn"
        assert first.server_tool_use == {"web-search": 1}
        assert [b["type"] for b in first.assistant][1:] == ["server_tool_use", "web_search_tool_result"]
        # Continued as the API documents: the paused content is the last message, tools unchanged.
        request = replace(request, history=(Exchange(first.assistant),))
        second = sync_turn(adapter, request, spec)
        body = emulator.calls(provider.sync)[-1].body
        assert body["messages"][-1]["role"] == "assistant"
        assert second.turn_end == "end_turn"
        assert second.server_tool_use == {"web-fetch": 1}
        # A continuation without the tool the paused turn used is refused, as by the real API.
        refused = adapter.run_sync(replace(request, tools=("web-fetch",)), spec)
        assert refused.status is Status.ERRORED
    else:
        # Gemini has no pause: the search grounds the turn, which then answers.
        assert first.turn_end == "end_turn"
        assert first.server_tool_use == {"web-search": 1}
        assert first.usage.input_tokens > 200
    adapter.close()
