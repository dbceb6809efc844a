"""Submit, poll within the deadline, collect, and fall back to sync for exactly what is missing."""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from batch_arbiter.core.conversation import PAUSE_TURN, TOOL_USE, TurnOutcome
from batch_arbiter.core.records import Outcome, PromptRequest, RunMode, RunStatus, Status, Validation, Via
from batch_arbiter.core.runner_cost import RunnerCost
from batch_arbiter.core.structured import Validators
from batch_arbiter.errors import AuthError, BatchArbiterError, Cancelled, NoSuchBatch, ProviderError
from batch_arbiter.providers.base import BatchState, Provider, RunSpec
from batch_arbiter.run.results import RESULTS_FILE, Totals
from batch_arbiter.run.state import STATE_FILE, RunState

# The longest single wait between polls, unless 10 % of the elapsed time is longer: a batch that
# ends is noticed within max(5 min, 10 % of its run time) while a 20-hour batch costs ~50 polls.
POLL_CAP_SECONDS = 300.0
# After a cancel, how long to wait for the batch to end before giving up on its results.
CANCEL_GRACE_SECONDS = 120.0
# After a cancel, how long in-flight sync calls may still deliver their (paid) answers. The runner
# sends SIGINT, then SIGTERM 7.5 s later, then SIGKILL 2.5 s after that.
CANCEL_WRITE_GRACE_SECONDS = 5.0
# A results download that breaks off is retried this often, each time skipping what already arrived.
DOWNLOAD_ATTEMPTS = 3
# What a request adds to a batch body beyond its text (ids, parameters, JSON punctuation), generously.
REQUEST_ENVELOPE_BYTES = 1024
# Split below the provider's byte limit: text size is an estimate of the encoded size.
BYTES_HEADROOM = 0.9
# Polls may fail for a while (network, 5xx); only this many failures in a row end the wait.
MAX_POLL_FAILURES = 20


class StateNotSaved(BatchArbiterError):
    """A batch exists but state.json could not be written (a full disk, a read-only directory)."""

    def __init__(self, batch_ids: str, cause: OSError) -> None:
        why = cause.strerror or str(cause)
        if batch_ids:
            message = (
                f"batch {batch_ids} was created but {STATE_FILE} could not be written ({why}); nothing more was "
                f"sent. Collect it with `batch-id: {batch_ids}` once the output directory is writable; running "
                "again without it would create and pay for another batch"
            )
        else:
            message = f"{STATE_FILE} could not be written ({why}); nothing was submitted"
        super().__init__(message)
        self.batch_ids = batch_ids


def next_poll_wait(first: float, attempt: int, elapsed: float) -> float:
    """Exponential from `first`, capped at max(POLL_CAP_SECONDS, 10 % of elapsed)."""
    grown = first * (2.0 ** min(attempt, 60))
    return max(first, min(grown, max(POLL_CAP_SECONDS, 0.1 * elapsed)))


@dataclass
class RunResult:
    """How a run ended: its mode, status, batches, totals and the events to report."""

    mode: RunMode
    status: RunStatus
    batch_ids: list[str]
    totals: Totals
    events: list[str] = field(default_factory=list)
    # Why the run stopped at once (a batch the API refused to show or does not have); None otherwise.
    fatal: str | None = None
    # Seconds spent waiting on batches (polling until they ended, or the deadline, or a cancel's grace).
    waited_seconds: float = 0.0
    # The runner's minutes and their cost, once the caller knows them.
    runner: RunnerCost | None = None

    @property
    def batch_id(self) -> str | None:
        """All batch ids, comma-separated: the form the `batch-id` input takes back."""
        return ",".join(self.batch_ids) or None


def split(requests: Sequence[PromptRequest], max_requests: int, max_bytes: int) -> list[Sequence[PromptRequest]]:
    """Consecutive chunks that stay under both of a provider's per-batch limits."""
    chunks: list[Sequence[PromptRequest]] = []
    start = size = 0
    for i, request in enumerate(requests):
        weight = request.text_bytes() + REQUEST_ENVELOPE_BYTES
        if i > start and (i - start >= max_requests or size + weight > max_bytes):
            chunks.append(requests[start:i])
            start, size = i, 0
        size += weight
    if start < len(requests):
        chunks.append(requests[start:])
    return chunks


Log = Callable[[str], None]


class Sink(Protocol):
    """Where the engine puts each request's outcome the moment it has one: a run's `results.jsonl`
    (ResultWriter), or one round of a multi-turn run."""

    totals: Totals
    written: set[str]

    def write(self, outcome: Outcome, source: str, via: Via, *, first: tuple[Outcome, Via] | None = None) -> object:
        """Keep `outcome` (on disk before it returns); a custom id is written once. `first`: an earlier paid
        answer of the request that did not match its response schema."""
        ...

    def flush(self) -> None:
        """Hand what was written to the OS."""
        ...


SinkT = TypeVar("SinkT", bound=Sink)


class Engine(Generic[SinkT]):
    """Brings every request of a run to a final result, or leaves it pending: by batch with a sync fallback, or sync."""

    def __init__(
        self,
        provider: Provider,
        spec: RunSpec,
        writer: SinkT,
        state: RunState,
        *,
        deadline: float,
        poll_interval: float,
        on_timeout: str = "fallback",
        concurrency: int = 8,
        log: Log = print,
        warn: Log = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        events: list[str] | None = None,
        defer: Callable[[str], bool] | None = None,
    ) -> None:
        self.provider = provider
        self.spec = spec
        self.writer = writer
        self.state = state
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.on_timeout = on_timeout
        self.concurrency = concurrency
        self.log = log
        self.warn = warn
        self.clock = clock
        self.sleep = sleep
        self.cancel_grace = CANCEL_GRACE_SECONDS
        self.cancel_write_grace = CANCEL_WRITE_GRACE_SECONDS
        # Shared with the provider's `on_event`, so what it did on its own is in the run's report too.
        self.events: list[str] = [] if events is None else events
        self._sources: dict[str, str] = {}
        # Response schemas by custom_id, and the first answer of each request that did not match its
        # schema: it reruns synchronously once, and its line keeps that first (paid) answer.
        self._schemas: dict[str, Any] = {}
        self._validators = Validators()
        self._invalid: dict[str, tuple[Outcome, Via]] = {}
        self._members: dict[str, set[str] | None] = {}
        self._unfinished: set[str] = set()
        # Batches that ended but whose results could not be read, and batches that stopped answering.
        self._undownloaded: set[str] = set()
        self._unreachable: set[str] = set()
        self._left_by_choice = False
        # A batch call no retry or fallback can get past (401/403/404): the run stops at once.
        self._fatal: ProviderError | None = None
        self._gone: set[str] = set()
        self.waited_seconds = 0.0
        # Requests whose errored or expired batch outcome is kept as it is instead of being rerun
        # synchronously at once (a later turn of a conversation gets one more batch round first).
        self._defer = defer
        self._unfinished_outcomes: dict[str, Outcome] = {}

    # -- entry points ----------------------------------------------------------------------------

    def run_sync(self, requests: Sequence[PromptRequest], *, patient: bool = False) -> RunResult:
        """Run every request synchronously; nothing is submitted as a batch. On the fastest tier, unless
        `patient` (a fallback with time left before the deadline may use a slower, cheaper one)."""
        self._schemas = {r.custom_id: r.response_schema for r in requests if r.response_schema is not None}
        # Sync mode is chosen for latency: no provider should trade speed for price here.
        self._fallback(requests, patient=patient)
        return self._finish("sync", [])

    def run_batch(self, requests: Sequence[PromptRequest], batch_ids: Sequence[str] = ()) -> RunResult:
        """Submit `requests` as batches (or collect the given `batch_ids`), then run synchronously what has no result.

        Batches still running at the deadline are canceled, or with `on-timeout: leave` their requests stay pending.
        """
        self._sources = {r.custom_id: r.source for r in requests}
        self._schemas = {r.custom_id: r.response_schema for r in requests if r.response_schema is not None}
        if batch_ids:
            self.state.collecting(list(batch_ids), [r.custom_id for r in requests])
            self.log(f"Collecting {', '.join(batch_ids)}")
            # Which request went into which batch is not known: none is "missing" until all are read.
            members: dict[str, set[str] | None] = dict.fromkeys(batch_ids)
            self._members = members
        else:
            submitted, failed = self._submit(requests)
            if submitted is None:
                return self._finish("batch", [])
            members = submitted
            if failed:
                self._fallback(failed)
        if not members:
            return self._finish("batch+fallback", [])
        ids = list(members)

        unended = self._wait(ids)
        if self._fatal is not None:
            return self._stop(requests, members, ids)
        if unended and self.on_timeout == "leave":
            noun = "batch" if len(unended) == 1 else "batches"
            self._event(f"deadline passed; {noun} {', '.join(unended)} left running (on-timeout: leave)")
            left = set().union(*(members[b] or {r.custom_id for r in requests} for b in unended))
            for request in requests:
                if request.custom_id in left and request.custom_id not in self.writer.written:
                    self.writer.write(
                        Outcome(request.custom_id, Status.PENDING, error="left in the batch; collect later"),
                        request.source,
                        Via.BATCH,
                    )
            self.state.pending()
            self._left_by_choice = True
            if all(b in unended for b in ids):
                return self._finish("pending", ids)
        elif unended:
            self._cancel(unended)
            # A batch that will not end (or answer) may still have finished much of its work: its
            # requests stay pending for a later collect rather than being paid for twice.
            self._undownloaded.update(self._wait(unended, grace=self.cancel_grace))
            if self._fatal is not None:
                return self._stop(requests, members, ids)

        self._fallback(self._leftovers(requests, members))
        mode: RunMode = "batch+fallback" if self.writer.totals.via[Via.SYNC] else "batch"
        return self._finish(mode, ids)

    def _stop(
        self, requests: Sequence[PromptRequest], members: dict[str, set[str] | None], ids: list[str]
    ) -> RunResult:
        """After a fatal batch error: nothing is run synchronously. A request whose batch does not exist
        failed; any other is still in a batch the run could not read, pending for a later collect."""
        assert self._fatal is not None
        self._event(f"{self._fatal}; stopped without running anything synchronously")
        held = False
        for request in requests:
            cid = request.custom_id
            if cid in self.writer.written:
                continue
            holders = [b for b in ids if members.get(b) is None or cid in (members[b] or ())]
            if holders and all(b in self._gone for b in holders):
                self.writer.write(Outcome(cid, Status.ERRORED, error=str(self._fatal)), request.source, Via.BATCH)
            else:
                held = True
                self.writer.write(
                    Outcome(cid, Status.PENDING, error=f"{self._fatal}; collect later"), request.source, Via.BATCH
                )
        self.writer.flush()
        if held:
            self.state.pending()
        else:
            self.state.done("failed")
        result = self._finish("batch", ids)
        result.status = "failed" if not (result.totals.succeeded or result.totals.incomplete) else "partial"
        result.fatal = str(self._fatal)
        return result

    def _leftovers(self, requests: Sequence[PromptRequest], members: dict[str, set[str] | None]) -> list[PromptRequest]:
        """The requests to run synchronously. Those of a batch whose results could not be read may well
        have been answered: they stay pending for a later collect rather than being paid for twice."""
        leftovers = [r for r in requests if r.custom_id not in self.writer.written]
        held: set[str] = set()
        for batch_id in sorted(self._undownloaded):
            ids = members.get(batch_id)
            held |= ids if ids is not None else {r.custom_id for r in leftovers}
            self._event(f"results of batch {batch_id} could not be read; collect them later with batch-id {batch_id}")
        # What a batch's results said was errored, expired or canceled was not paid for: it may be rerun.
        held -= self._unfinished
        for request in leftovers:
            if request.custom_id in held:
                self.writer.write(
                    Outcome(request.custom_id, Status.PENDING, error="results not downloaded; collect later"),
                    request.source,
                    Via.BATCH,
                )
        if held:
            self.state.pending()
        rerun = [r for r in leftovers if r.custom_id not in held]
        if self._defer is not None:
            kept = [r for r in rerun if r.custom_id in self._unfinished_outcomes and self._defer(r.custom_id)]
            for request in kept:
                self.writer.write(self._unfinished_outcomes[request.custom_id], request.source, Via.BATCH)
            deferred = {r.custom_id for r in kept}
            rerun = [r for r in rerun if r.custom_id not in deferred]
        if any(ids is None for ids in members.values()):
            # Collected by id: only now, with every batch read, is a request known to be missing.
            missing = sum(1 for r in rerun if r.custom_id not in self._unfinished)
            if missing:
                self._event(f"{missing} requests had no result in the batches; rerunning them synchronously")
        return rerun

    # -- steps -----------------------------------------------------------------------------------

    def _submit(
        self, requests: Sequence[PromptRequest]
    ) -> tuple[dict[str, set[str] | None] | None, list[PromptRequest]]:
        """Submit in as many batches as the provider's limits need. Returns each batch's custom ids
        and the requests whose batch could not be created (to run synchronously); None when nothing
        can run at all (a rejected key)."""
        limit_bytes = int(self.provider.max_batch_bytes * BYTES_HEADROOM)
        chunks = split(requests, self.provider.max_batch_requests, limit_bytes)
        if len(chunks) > 1:
            self._event(f"{len(requests):,} requests split into {len(chunks)} batches (provider limits)")
        members: dict[str, set[str] | None] = {}
        failed: list[PromptRequest] = []
        for chunk in chunks:
            token = f"batch-arbiter-{uuid.uuid4().hex[:16]}"
            try:
                self.state.creating_batch(token, [r.custom_id for r in chunk])
            except OSError as exc:
                raise StateNotSaved(self.state.batch_id or "", exc) from None
            try:
                batch_id = self.provider.submit(chunk, self.spec, token=token)
            except ProviderError as exc:
                self.state.creating = None
                self.state.save()
                if exc.fatal:
                    submitted = set().union(*(ids for ids in members.values() if ids is not None))
                    self._event(f"{exc}; nothing more was submitted" if members else f"{exc}; nothing was run")
                    for request in requests:
                        if request.custom_id not in submitted and request.custom_id not in self.writer.written:
                            self.writer.write(
                                Outcome(request.custom_id, Status.ERRORED, error=str(exc)), request.source, Via.BATCH
                            )
                    # Batches already created are paid for: they are still waited on and collected.
                    return (members or None), []
                self._event(f"{exc}; running its {len(chunk):,} requests synchronously")
                failed.extend(chunk)
                continue
            custom_ids = [r.custom_id for r in chunk]
            # In the log before anything else can fail: the batch is paid for from here on.
            self.log(f"Submitted batch {batch_id} with {len(chunk):,} requests")
            try:
                self.state.submitted(batch_id, custom_ids)
            except OSError as exc:
                # Without state.json a re-run would create (and pay for) the batch again: stop here.
                # Every batch of the run so far: `submitted` records the new one before it writes.
                raise StateNotSaved(self.state.batch_id or batch_id, exc) from None
            members[batch_id] = set(custom_ids)
            self._members[batch_id] = members[batch_id]
        return members, failed

    def _wait(self, batch_ids: list[str], grace: float | None = None) -> list[str]:
        """`_poll`, timed: the runner's minutes spent waiting are what batching has to save more than."""
        began = self.clock()
        try:
            return self._poll(batch_ids, grace)
        finally:
            self.waited_seconds += max(0.0, self.clock() - began)

    def _poll(self, batch_ids: list[str], grace: float | None = None) -> list[str]:
        """Poll every batch, collecting each as it ends, until all ended or time is up.

        Returns the batches that had not ended. Time is up at the deadline, or `grace` seconds from now
        (after a cancel).
        """
        started = self.clock()
        end = self.deadline if grace is None else started + grace
        first = self.poll_interval if grace is None else min(self.poll_interval, 1.0)
        pending = list(batch_ids)
        failures = dict.fromkeys(batch_ids, 0)
        attempt = 0
        while pending:
            for batch_id in list(pending):
                try:
                    status = self.provider.status(batch_id)
                    failures[batch_id] = 0
                except ProviderError as exc:
                    if exc.fatal:
                        self._fatal_error(batch_id, exc)
                        return pending
                    failures[batch_id] += 1
                    self.warn(f"{exc} (poll {attempt + 1}; retrying until the deadline)")
                    if failures[batch_id] >= MAX_POLL_FAILURES:
                        self._event(
                            f"{failures[batch_id]} status checks in a row failed; stopped waiting for {batch_id}"
                        )
                        pending.remove(batch_id)
                        self._unreachable.add(batch_id)
                    continue
                if status.state in (BatchState.ENDED, BatchState.FAILED):
                    if status.error:
                        self._event(f"batch {batch_id} failed: {status.error}")
                    pending.remove(batch_id)
                    self._collect(batch_id, status.counts)
                    if self._fatal is not None:
                        return pending
            now = self.clock()
            if not pending or now >= end:
                break
            wait = min(next_poll_wait(first, attempt, now - started), end - now)
            if grace is not None:
                wait = min(wait, 5.0)
            attempt += 1
            self.sleep(wait)
        if grace is not None and pending:
            self._event(f"{', '.join(pending)} did not end within {grace:.0f}s of the cancel")
        return pending + sorted(self._unreachable & set(batch_ids) - set(pending))

    def _cancel(self, batch_ids: list[str]) -> None:
        """Cancel so nothing still queued is billed; what the batches finished is kept."""
        noun = "batch" if len(batch_ids) == 1 else "batches"
        self._event(f"deadline passed; canceled {noun} {', '.join(batch_ids)} and kept what finished")
        for batch_id in batch_ids:
            try:
                self.provider.cancel(batch_id)
            except ProviderError as exc:
                if exc.fatal:
                    self._fatal_error(batch_id, exc)
                    return
                self.warn(str(exc))

    def _fatal_error(self, batch_id: str, exc: ProviderError) -> None:
        self._fatal = self._fatal or exc
        if isinstance(exc, NoSuchBatch):
            self._gone.add(batch_id)

    def _collect(self, batch_id: str, counts: dict[str, int] | None = None) -> None:
        """Write every result of an ended batch; errored, expired and canceled ones are left for the
        fallback. A download that cannot finish leaves that batch's unanswered requests pending.

        `counts` are the batch's own (its status): a download that ends cleanly with fewer succeeded
        results than they say was cut short, and is retried like a broken one. Paid answers are never
        taken for missing because a download was short."""
        unfinished: dict[str, Status] = {}
        succeeded: set[str] = set()
        foreign: set[str] = set()
        foreign_succeeded: set[str] = set()
        invalid: set[str] = set()
        expected = (counts or {}).get("succeeded", 0)
        refused = 0
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                for outcome in self.provider.results(batch_id):
                    cid = outcome.custom_id
                    # Settled: an answer (whole or cut short) or a billed refusal; the API counts each
                    # as a succeeded request, and none is rerun.
                    if cid not in self._sources:
                        foreign.add(cid)  # not a request of this run: never written, never counted
                        if outcome.settled:
                            foreign_succeeded.add(cid)
                        continue
                    if outcome.settled:
                        succeeded.add(cid)
                    if cid in self.writer.written:
                        continue  # a retried download repeats what the first one gave
                    outcome = self._check(outcome)
                    if outcome.validation is Validation.INVALID:
                        # Paid, but not what the next step can use: kept in memory (the batch still holds
                        # it for a later collect) and rerun synchronously once.
                        self._invalid[cid] = (outcome, Via.BATCH)
                        invalid.add(cid)
                        self._unfinished.add(cid)
                    elif outcome.settled:
                        self.writer.write(outcome, self._sources[cid], Via.BATCH)
                        if outcome.status is Status.ERRORED:
                            refused += 1
                    else:
                        unfinished[cid] = outcome.status
                        self._unfinished.add(cid)
                        self._unfinished_outcomes[cid] = outcome
            except ProviderError as exc:
                if exc.fatal:
                    self._fatal_error(batch_id, exc)
                    self._undownloaded.add(batch_id)
                    break
                self.warn(f"{exc} (download attempt {attempt} of {DOWNLOAD_ATTEMPTS})")
                continue
            read = len(succeeded) + len(foreign_succeeded)
            if read >= expected:
                break
            self.warn(
                f"batch {batch_id} results download ended early: {read} of {expected} succeeded "
                f"results read (download attempt {attempt} of {DOWNLOAD_ATTEMPTS})"
            )
        else:
            self._undownloaded.add(batch_id)
        self.writer.flush()
        if refused:
            self._event(
                f"batch {batch_id}: {refused} refused by the model (stop reason in {RESULTS_FILE}); "
                "not rerun, since the same prompt would be refused and paid for again"
            )
        if foreign:
            self._event(f"batch {batch_id}: ignored {len(foreign)} results for requests this run did not submit")
        counts = Counter(unfinished.values())
        parts = [f"{counts[s]} {s}" for s in Status if counts[s]]
        parts += [f"{len(invalid)} not matching the response schema"] if invalid else []
        members = self._members.get(batch_id)
        if members is not None and batch_id not in self._undownloaded:
            missing = sum(
                1 for cid in members if cid not in self.writer.written and cid not in unfinished and cid not in invalid
            )
            parts += [f"{missing} without a result"] if missing else []
        if parts:
            self._event(f"batch {batch_id}: {', '.join(parts)}; rerunning them synchronously")

    def _fallback(self, requests: Iterable[PromptRequest], *, patient: bool = True) -> None:
        """Run `requests` synchronously, writing each answer (flushed) the moment it arrives: a sync
        answer is paid for, and no cancel or kill after it arrives may lose it."""
        todo = list(requests)
        if not todo:
            return
        self.log(f"Running {len(todo):,} requests synchronously ({self.concurrency} at a time)")
        run = functools.partial(self._sync_one, patient=patient)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sync")
        queue = iter(todo)
        # `concurrency` calls in flight, never more: a large fallback holds no future per request, and a
        # refused key stops after at most that many calls.
        running: dict[Future[Outcome], PromptRequest] = {}
        try:
            for request in itertools.islice(queue, self.concurrency):
                running[pool.submit(run, request)] = request
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    self._write_sync(running.pop(future), future.result())
                for request in itertools.islice(queue, len(done)):
                    running[pool.submit(run, request)] = request
        except Cancelled:
            self._keep_arrived(running)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        except AuthError as exc:
            # No other call with this key can succeed: stop at the first refusal instead of making them all.
            for future in running:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            self._fatal = self._fatal or exc
            self._event(f"{exc}; stopped the synchronous calls")
            for request in todo:
                if request.custom_id not in self.writer.written:
                    self._write_sync(request, Outcome(request.custom_id, Status.ERRORED, error=str(exc)))
            return
        pool.shutdown()

    def _write_sync(self, request: PromptRequest, outcome: Outcome) -> None:
        first = self._invalid.get(request.custom_id)
        if first is not None and outcome.validation is None and not _between_turns(outcome):
            # The rerun failed outright: the request's only answer is the one that did not match.
            outcome.validation = Validation.INVALID
        self.writer.write(outcome, request.source, Via.SYNC, first=first)
        self.writer.flush()

    def _check(self, outcome: Outcome) -> Outcome:
        """Hold an answer to its request's schema: parsed into `json`, or errored with where and why it does
        not match. A valid answer after an invalid one is `fixed`. In a conversation only the final answer is
        held to it: a turn that calls tools or pauses answers with calls, not with the schema's JSON."""
        schema = self._schemas.get(outcome.custom_id)
        # An answer cut short at the output limit is held to the schema too: the provider's guarantee does
        # not cover it. A refusal has no answer to hold (it is errored, and not rerun).
        if schema is None or outcome.status not in (Status.SUCCEEDED, Status.INCOMPLETE) or _between_turns(outcome):
            return outcome
        checked = self._validators.check(outcome.text, schema)
        if checked.valid:
            outcome.json = checked.value
            outcome.validation = Validation.FIXED if outcome.custom_id in self._invalid else Validation.VALID
        else:
            outcome.status, outcome.error, outcome.validation = Status.ERRORED, checked.error, Validation.INVALID
        return outcome

    def _keep_arrived(self, running: dict[Future[Outcome], PromptRequest]) -> None:
        """On a cancel: calls not started are dropped; answers already arrived, or arriving within a
        short grace (the runner kills the step seconds after it signals), are written. A second signal
        ends the grace early."""
        for future in running:
            future.cancel()
        started = [f for f in running if not f.cancelled()]
        with contextlib.suppress(Cancelled):
            wait(started, timeout=self.cancel_write_grace)
        for future in started:
            if future.done() and running[future].custom_id not in self.writer.written:
                self._write_sync(running[future], future.result())

    def _sync_one(self, request: PromptRequest, patient: bool = True) -> Outcome:
        # A fallback may use the time left before the deadline (Gemini then tries its half-price Flex tier).
        remaining = max(0.0, self.deadline - self.clock()) if patient else None
        try:
            outcome = self._check(self.provider.run_sync(request, self.spec, deadline_remaining=remaining))
            if outcome.validation is Validation.INVALID and request.custom_id not in self._invalid:
                # The provider's guarantee has gaps (refusals, cut-off answers): one more synchronous try.
                self._invalid[request.custom_id] = (outcome, Via.SYNC)
                outcome = self._check(self.provider.run_sync(request, self.spec, deadline_remaining=None))
            return outcome
        except AuthError:
            raise
        except Exception as exc:  # one bad request must not lose the others' results
            return Outcome(request.custom_id, Status.ERRORED, error=f"{type(exc).__name__}: {exc}")

    def _finish(self, mode: RunMode, batch_ids: list[str]) -> RunResult:
        totals = self.writer.totals
        status: RunStatus
        if mode == "pending":
            status = "pending"
        elif totals.requests and totals.succeeded == totals.requests:
            status = "succeeded"
        elif totals.succeeded or totals.incomplete:
            # An answer cut short at the output limit is kept, but the run did not fully succeed.
            status = "partial"
        else:
            status = "failed"
        if totals.statuses[Status.PENDING] and mode != "pending":
            # Some results are still with the provider (state.json says where): by choice (`leave`)
            # that is a pending run; because they could not be read, it needs attention.
            deliberate = self._left_by_choice and not self._undownloaded
            status = "pending" if deliberate and totals.failed == 0 else "partial"
        elif mode != "pending":
            self.state.done(status)
        return RunResult(
            mode,
            status,
            batch_ids,
            totals,
            self.events,
            fatal=str(self._fatal) if self._fatal else None,
            waited_seconds=self.waited_seconds,
        )

    def note(self, message: str) -> None:
        """Something the caller did that the run's report should tell."""
        self._event(message)

    def _event(self, message: str) -> None:
        self.events.append(message)
        self.warn(message)


def _between_turns(outcome: Outcome) -> bool:
    """A conversation's turn that ended to run tools or to be continued: not its answer."""
    return isinstance(outcome, TurnOutcome) and outcome.turn_end in (TOOL_USE, PAUSE_TURN)
