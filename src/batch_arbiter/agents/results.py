"""A multi-turn run's results: one `results.jsonl` line per conversation (turns, tool calls, usage and cost
summed over its turns), the final answer in `<custom_id>.md`, and the whole conversation in
`<custom_id>.transcript.jsonl`. Written from `conversations.json`, so a later run that goes on from
where this one stopped writes them again, complete."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from batch_arbiter.agents.store import ACTIVE, ANSWERED, DONE, FAILED, INCOMPLETE, Conversation, Store, Turn
from batch_arbiter.core.conversation import PAUSE_TURN, TOOL_USE
from batch_arbiter.core.pricing import PriceTable, PricingError, tool_fee_unit, tool_fees_usd
from batch_arbiter.core.prompts import CUSTOM_ID_PATTERN
from batch_arbiter.core.records import Status, Usage, Validation
from batch_arbiter.files import open_own, write_own
from batch_arbiter.run.results import RESULTS_FILE, Totals

TRANSCRIPT_SUFFIX = ".transcript.jsonl"
# Server-tool fees of one turn in USD: (model, server tools used by kind, the conversation's tools, date,
# answered in a batch).
Fees = Callable[[str, dict[str, int], tuple[str, ...], date, bool], float]
# Anthropic bills code execution by container time, which usage does not report: each use is priced at the
# 5-minute minimum (a floor), and nothing when a web tool of 2026-02-09 or later is in the request (ours are).
CODE_EXECUTION_MINIMUM_HOURS = 5 / 60


def server_tool_fees(model: str, used: dict[str, int], tools: tuple[str, ...], on: date, batch: bool) -> float:
    """The dated fee table's price of one turn's server-tool use (core.pricing.tool_fees_usd), counted in
    each row's unit."""
    counts: dict[str, float] = {}
    for tool, uses in used.items():
        unit = tool_fee_unit(model, tool, on)
        if unit == "grounded_prompt":
            counts[tool] = 1.0 if uses else 0.0
        elif unit == "container_hour":
            free = bool({"web-search", "web-fetch"} & set(tools))
            counts[tool] = 0.0 if free else uses * CODE_EXECUTION_MINIMUM_HOURS
        else:
            counts[tool] = float(uses)
    return tool_fees_usd(model, counts, on, batch=batch)


class ConversationResults:
    """Prices every turn at the tier that answered it and writes the result files of a multi-turn run."""

    def __init__(
        self,
        out_dir: Path,
        prices: PriceTable,
        model: str,
        today: date,
        *,
        redact: Callable[[str], str] = str,
        fees: Fees = server_tool_fees,
    ) -> None:
        self.out_dir = out_dir
        self.path = out_dir / RESULTS_FILE
        self._prices = prices
        self._model = model
        self._today = today
        self._redact = redact
        self._fees = fees
        # Models whose server-tool fees the table has no row for (their tokens are still priced).
        self.unpriced_fees: set[str] = set()

    def write(self, store: Store, *, pending_note: str | None = None) -> Totals:
        """Write every conversation's line, answer and transcript; returns the run's totals. A conversation
        still waiting for a turn is `pending` (`pending_note` says why)."""
        totals = Totals()
        with open_own(self.path) as fh:
            for conversation in store.conversations.values():
                record, usage = self.line(conversation, pending_note)
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                totals.count(record, usage)
                if record["cost_usd"] == 0 and record["sync_cost_usd"] == 0 and usage.output_tokens:
                    totals.unpriced_models.add(record["model"] or self._model)
                self._files(conversation, record)
        return totals

    def line(self, conversation: Conversation, pending_note: str | None = None) -> tuple[dict[str, Any], Usage]:
        """One conversation's `results.jsonl` line and its summed usage."""
        usage = Usage()
        cost = sync_cost = 0.0
        vias: set[str] = set()
        tiers: list[str] = []
        calls: Counter[str] = Counter()
        server: Counter[str] = Counter()
        model = None
        answered = [t for t in conversation.turns if t.status in ANSWERED]
        # A final answer that did not match the schema was paid for as well, though it answered nothing.
        paid = [t for t in conversation.turns if t.status in ANSWERED or t.validation == str(Validation.INVALID)]
        for turn in paid:
            usage.add(turn.usage)
            turn_cost, turn_sync = self.turn_cost(turn, conversation.request.tools)
            cost += turn_cost
            sync_cost += turn_sync
            vias.add(turn.via)
            if turn.tier and turn.tier not in tiers:
                tiers.append(turn.tier)
            calls.update(turn.tool_calls)
            server.update(turn.server_tool_use)
            model = turn.model or model
        status = {
            DONE: Status.SUCCEEDED,
            INCOMPLETE: Status.INCOMPLETE,
            FAILED: Status.ERRORED,
            ACTIVE: Status.PENDING,
        }[conversation.status]
        error = conversation.error
        if status is Status.PENDING:
            error = pending_note or "the conversation has turns left; run again to continue it"
        via = "+".join(v for v in ("batch", "sync") if v in vias) or "batch"
        text = conversation.text if status in (Status.SUCCEEDED, Status.INCOMPLETE) else None
        record = {
            "custom_id": conversation.custom_id,
            "source": conversation.request.source,
            "status": str(status),
            "via": via,
            "model": model or self._model,
            "text": None if text is None else self._redact(text),
            "usage": usage.as_dict(),
            "cost_usd": round(cost, 8),
            "sync_cost_usd": round(sync_cost, 8),
            "error": None if error is None else self._redact(error),
            "tier": "+".join(tiers) or None,
            "stop_reason": conversation.stop_reason,
            "turns": len(answered),
            "tool_calls": dict(sorted(calls.items())),
            "server_tool_use": dict(sorted(server.items())),
            "transcript": f"{conversation.custom_id}{TRANSCRIPT_SUFFIX}",
        }
        if conversation.request.response_schema is not None and conversation.validation is not None:
            value = conversation.json
            shown = None if text is None else self._redact(text)
            if shown is not None and shown != text and conversation.validation != Validation.INVALID:
                # A secret the answer echoed is redacted in `json` too: it is read from the redacted text.
                try:
                    value = json.loads(shown)
                except ValueError:
                    value = None
            record["json"] = value if conversation.validation != Validation.INVALID else None
            record["validation"] = conversation.validation
        return record, usage

    def turn_cost(self, turn: Turn, tools: tuple[str, ...] = ()) -> tuple[float, float]:
        """(cost, sync cost) of one answered turn: tokens at the rate of the tier that answered it (half
        in a batch or on Flex) plus its server-tool fees; the sync cost prices the same turn synchronously,
        writing its cache with the 5-minute TTL a synchronous call would use."""
        discounted = turn.via == "batch" or turn.tier == "flex"
        model = turn.model or self._model
        as_sync = replace(turn.usage, cache_creation_1h_tokens=0)
        try:
            cost = self._prices.cost(model, turn.usage, self._today, batch=discounted, per_request=True)
            sync = self._prices.cost(model, as_sync, self._today, batch=False, per_request=True)
        except PricingError:
            if model == self._model:
                return 0.0, 0.0
            model = self._model
            cost = self._prices.cost(model, turn.usage, self._today, batch=discounted, per_request=True)
            sync = self._prices.cost(model, as_sync, self._today, batch=False, per_request=True)
        fee = sync_fee = 0.0
        if turn.server_tool_use:
            try:
                fee = self._fees(model, turn.server_tool_use, tools, self._today, discounted)
                sync_fee = self._fees(model, turn.server_tool_use, tools, self._today, False)
            except PricingError:
                # No fee row for this model: the tokens are priced, the fee is reported as unknown.
                self.unpriced_fees.add(model)
        return cost + fee, sync + sync_fee

    def _files(self, conversation: Conversation, record: dict[str, Any]) -> None:
        # Only API-valid ids ([A-Za-z0-9_-]{1,64}) name files: nothing can write outside out_dir.
        if not CUSTOM_ID_PATTERN.match(conversation.custom_id):
            return
        if record["text"] is not None:
            write_own(self.out_dir / f"{conversation.custom_id}.md", record["text"])
            if record.get("validation") in (Validation.VALID, Validation.FIXED):
                value = json.dumps(record["json"], ensure_ascii=False, indent=2) + "\n"
                write_own(self.out_dir / f"{conversation.custom_id}.json", value)
        lines = (json.dumps(entry, ensure_ascii=False) for entry in transcript(conversation))
        # Model text, tool output and API errors are untrusted: a secret echoed anywhere is masked.
        write_own(self.out_dir / record["transcript"], "".join(self._redact(line) + "\n" for line in lines))


def transcript(conversation: Conversation) -> Iterator[dict[str, Any]]:
    """The whole conversation, in order: the request, then each turn with the assistant's content, and the
    tool results that answered it."""
    request = conversation.request
    yield {
        "type": "request",
        "custom_id": request.custom_id,
        "source": request.source,
        "system": request.system,
        "messages": list(request.messages),
        "tools": list(request.tools),
    }
    exchanges = iter(conversation.history)
    for number, turn in enumerate(conversation.turns, 1):
        entry: dict[str, Any] = {"type": "turn", "turn": number, **turn.as_dict()}
        exchange = None
        if turn.status in ANSWERED and turn.stop_reason in (TOOL_USE, PAUSE_TURN):
            exchange = next(exchanges, None)
        if exchange is not None:
            entry["content"] = [dict(b) for b in exchange.assistant]
        elif turn.status in ANSWERED and number == len(conversation.turns):
            entry["text"] = conversation.text
        yield entry
        if exchange is not None and exchange.results:
            yield {"type": "tool_results", "turn": number, "results": [r.as_dict() for r in exchange.results]}
