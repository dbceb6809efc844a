"""Batch rounds: every conversation that needs the model goes into one round (a batch, split over the
provider's limits as any run), tools run between rounds, and the whole run keeps the job's deadline.

Each round is one run of the single-turn engine (run/engine.py): submit with state.json written first,
poll, collect, and rerun synchronously what the batch did not answer. The rounds engine adds what a
conversation needs around it: the tool calls run between rounds, max-turns, and a turn past the first
that fails in a batch gets one more batch round before it runs synchronously."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batch_arbiter.agents.store import ACTIVE, ANSWERED, DONE, FAILED, INCOMPLETE, Conversation, RoundFile, Store, Turn
from batch_arbiter.core.conversation import (
    END_TURN,
    MAX_TOKENS,
    MAX_TURNS,
    PAUSE_TURN,
    TOOL_USE,
    CallResult,
    ConversationRequest,
    Exchange,
    ToolCall,
    TurnOutcome,
)
from batch_arbiter.core.records import Outcome, RunMode, RunStatus, Status, Validation, Via
from batch_arbiter.providers.base import Provider, RunSpec
from batch_arbiter.run.engine import Engine, RunResult
from batch_arbiter.run.state import RunState

# Runs one client tool call of a conversation (its tools, its workspace) into the result the model sees.
ToolRunner = Callable[[ConversationRequest, ToolCall], CallResult]
Log = Callable[[str], None]


@dataclass
class RoundReport:
    """One round as the summary lists it."""

    number: int
    conversations: int
    via: str
    batch_ids: list[str]
    waited_seconds: float
    tool_calls: int = 0


@dataclass
class RoundsResult:
    """How a multi-turn run ended: its mode and status as a run's, the rounds it ran, what to report."""

    mode: RunMode
    status: RunStatus
    batch_ids: list[str]
    rounds: list[RoundReport]
    events: list[str]
    fatal: str | None = None


@dataclass
class RunIdentity:
    """What state.json says of the run around each round's batches."""

    path: Path
    provider: str
    model: str
    workload: str
    deadline: str
    run: str | None = None
    custom_ids: list[str] = field(default_factory=list)

    def state(self) -> RunState:
        """A fresh state for the next round, naming every conversation of the run."""
        return RunState(
            self.path,
            self.provider,
            self.model,
            self.workload,
            self.deadline,
            custom_ids=list(self.custom_ids),
            run=self.run,
        )


class Rounds:
    """Brings every conversation to an answer, `max-turns`, a failure, or leaves it pending for a later run."""

    def __init__(
        self,
        provider: Provider,
        spec: RunSpec,
        store: Store,
        run_tool: ToolRunner,
        identity: RunIdentity,
        *,
        deadline: float,
        poll_interval: float,
        max_turns: int,
        on_timeout: str = "fallback",
        concurrency: int = 8,
        log: Log = print,
        warn: Log = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        events: list[str] | None = None,
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.store = store
        self.run_tool = run_tool
        self.identity = identity
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_turns = max_turns
        self.on_timeout = on_timeout
        self.concurrency = concurrency
        self.log = log
        self.warn = warn
        self.clock = clock
        self.sleep = sleep
        self.events: list[str] = [] if events is None else events
        self.rounds: list[RoundReport] = []
        self.batch_ids: list[str] = []
        # Set by tests: how long a canceled round may take to end.
        self.cancel_grace: float | None = None

    def run(self, *, batch: bool, batch_ids: Sequence[str] = ()) -> RoundsResult:
        """Run rounds until no conversation needs the model. `batch_ids`: the batches of the round an earlier
        run left in flight, collected first; `batch` False runs every turn synchronously."""
        resume = list(batch_ids)
        fatal: str | None = None
        left = False
        while self.store.unfinished:
            number = self.store.round
            active = [c for c in self.store.conversations.values() if c.status == ACTIVE]
            sink = RoundFile(self.store.round_path(number))
            for outcome, via, first in self.store.arrived(number):
                if outcome.custom_id in self.store.conversations and outcome.custom_id not in sink.written:
                    sink.keep(outcome, via, first)
            todo = [c.next_request() for c in active if c.custom_id not in sink.written]
            late = self.clock() >= self.deadline
            if batch and late and not resume and self.on_timeout == "leave":
                sink.close()
                self._event(f"deadline passed before round {number}; {len(active)} conversations left for a later run")
                left = True
                break
            sync = not batch or (late and not resume)
            started = self.clock()
            if resume:
                # Collecting batches an earlier run created: every conversation of the round may be in them;
                # the answers already on disk are skipped (the sink knows them), never written twice.
                todo = [c.next_request() for c in active]
            result = self._round(sink, todo, sync=sync, patient=batch, resume=resume) if todo or resume else None
            resume = []
            report = RoundReport(
                number,
                len(active),
                "sync" if sync else "batch",
                list(result.batch_ids) if result else [],
                self.clock() - started,
            )
            self.rounds.append(report)
            self.batch_ids += report.batch_ids
            if result is not None and result.fatal:
                fatal = result.fatal
            pending = any(o.status is Status.PENDING for o, _ in sink.outcomes.values())
            if pending:
                # Left in the batch (`on-timeout: leave`) or not readable: a later run collects this round
                # and applies all of its answers then, those of its batches that did end included.
                sink.close()
                self.store.save()
                left = True
                break
            report.tool_calls = self._apply(sink, number)
            sink.close()
            if fatal:
                for conversation in active:
                    if conversation.status == ACTIVE and conversation.custom_id not in sink.outcomes:
                        conversation.status, conversation.error = FAILED, fatal
            self.store.round = number + 1
            # The round's answers and the conversations they advanced, on disk before the next round.
            self.store.save()
            if fatal:
                break
        return self._finish(left, fatal)

    def _round(
        self, sink: RoundFile, requests: list[ConversationRequest], *, sync: bool, patient: bool, resume: list[str]
    ) -> RunResult:
        engine: Engine[RoundFile] = Engine(
            self.provider,
            self.spec,
            sink,
            self.identity.state(),
            deadline=self.deadline,
            poll_interval=self.poll_interval,
            on_timeout=self.on_timeout,
            concurrency=self.concurrency,
            log=self.log,
            warn=self.warn,
            clock=self.clock,
            sleep=self.sleep,
            events=self.events,
            defer=self._may_retry,
        )
        if self.cancel_grace is not None:
            engine.cancel_grace = self.cancel_grace
        if sync:
            return engine.run_sync(requests, patient=patient)
        return engine.run_batch(requests, resume)

    def _may_retry(self, custom_id: str) -> bool:
        """A turn past the first that failed in a batch gets one more batch round, unless time is up."""
        conversation = self.store.conversations.get(custom_id)
        return (
            conversation is not None
            and conversation.answered > 0
            and not conversation.retried
            and self.clock() < self.deadline
        )

    def _apply(self, sink: RoundFile, number: int) -> int:
        """Bring the round's answers into their conversations, running the tools they ask for. Returns the
        tool calls run."""
        calls = 0
        for custom_id, (outcome, via) in sink.outcomes.items():
            conversation = self.store.conversations.get(custom_id)
            if conversation is None or conversation.status != ACTIVE or outcome.status is Status.PENDING:
                continue
            first = sink.firsts.get(custom_id)
            if first is not None:
                self._invalid_turn(conversation, *first, number)
            calls += self._advance(conversation, outcome, via, number)
        return calls

    @staticmethod
    def _invalid_turn(conversation: Conversation, outcome: Outcome, via: Via, number: int) -> None:
        """A final answer that did not match the response schema: paid for, kept among the turns (priced,
        not counted by max-turns), and asked again synchronously with the same history."""
        conversation.turns.append(
            Turn(
                round=number,
                via=str(via),
                status=str(outcome.status),
                tier=outcome.tier or ("batch" if via is Via.BATCH else "standard"),
                model=outcome.model,
                stop_reason=outcome.stop_reason,
                usage=outcome.usage,
                error=outcome.error,
                validation=str(Validation.INVALID),
            )
        )

    def _advance(self, conversation: Conversation, outcome: Outcome, via: Via, number: int) -> int:
        turn_outcome = outcome if isinstance(outcome, TurnOutcome) else None
        answered = outcome.status in ANSWERED
        stop = (turn_outcome.turn_end if turn_outcome else None) or (
            MAX_TOKENS if outcome.status is Status.INCOMPLETE else END_TURN
        )
        calls = list(turn_outcome.tool_calls) if turn_outcome else []
        conversation.turns.append(
            Turn(
                round=number,
                via=str(via),
                status=str(outcome.status),
                tier=outcome.tier or ("batch" if via is Via.BATCH else "standard"),
                model=outcome.model,
                stop_reason=stop if answered else outcome.stop_reason,
                usage=outcome.usage,
                server_tool_use=dict(turn_outcome.server_tool_use) if turn_outcome else {},
                tool_calls=[c.name for c in calls] if answered else [],
                error=outcome.error,
                validation=None if outcome.validation is None else str(outcome.validation),
            )
        )
        if outcome.validation is not None:
            # Only a final answer is held to the schema (the engine skips tool-call and paused turns).
            conversation.validation = str(outcome.validation)
            conversation.json = outcome.json
        if not answered:
            if via is Via.BATCH and not outcome.settled:
                # Kept back by the engine (`_may_retry`): one more try in the next round.
                conversation.retried = True
                return 0
            conversation.status, conversation.error = FAILED, outcome.error
            return 0
        conversation.retried = False
        conversation.text = outcome.text
        assistant = turn_outcome.assistant if turn_outcome else ()
        if stop == TOOL_USE and calls:
            results = tuple(self._call(conversation.request, c) for c in calls)
            conversation.history.append(Exchange(assistant, results))
        elif stop == PAUSE_TURN:
            # Continued as the API documents: the paused content is sent back as the last message.
            conversation.history.append(Exchange(assistant))
        else:
            # The answer; one cut short at the output limit ends the conversation too, kept as incomplete.
            done = DONE if outcome.status is Status.SUCCEEDED else INCOMPLETE
            conversation.status, conversation.stop_reason = done, stop
            return 0
        if conversation.answered >= self.max_turns:
            conversation.status, conversation.stop_reason = INCOMPLETE, MAX_TURNS
        return len(calls) if stop == TOOL_USE else 0

    def _call(self, request: ConversationRequest, call: ToolCall) -> CallResult:
        try:
            return self.run_tool(request, call)
        except Exception as exc:  # a tool that breaks is the model's error to see, never the run's crash
            return CallResult(call.id, call.name, f"tool failed: {type(exc).__name__}", is_error=True)

    def _finish(self, left: bool, fatal: str | None) -> RoundsResult:
        counts = Counter(c.status for c in self.store.conversations.values())
        vias = {t.via for c in self.store.conversations.values() for t in c.turns if t.status == Status.SUCCEEDED}
        mode: RunMode
        if left:
            mode = "pending"
        elif vias == {"sync"}:
            mode = "sync"
        elif "sync" in vias:
            mode = "batch+fallback"
        else:
            mode = "batch"
        status: RunStatus
        if left and counts[FAILED] == 0:
            status = "pending"
        elif counts[DONE] == len(self.store.conversations):
            status = "succeeded"
        elif counts[DONE] + counts[INCOMPLETE]:
            # A conversation cut off by max-turns kept its last answer, but not a final one.
            status = "partial"
        else:
            status = "failed"
        return RoundsResult(mode, status, self.batch_ids, self.rounds, self.events, fatal)

    def note(self, message: str) -> None:
        """Something the caller found that the run's report should tell."""
        self._event(message)

    def _event(self, message: str) -> None:
        self.events.append(message)
        self.warn(message)
