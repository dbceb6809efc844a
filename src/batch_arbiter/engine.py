"""Submit, poll within the deadline, collect, and fall back to sync for exactly what is missing."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from batch_arbiter.providers.base import BatchState, Provider, ProviderError, RunSpec
from batch_arbiter.records import Outcome, PromptRequest, Status, Via
from batch_arbiter.results import ResultWriter, Totals
from batch_arbiter.state import RunState

# The longest single wait between polls, unless 10 % of the elapsed time is longer: a batch that
# ends is noticed within max(5 min, 10 % of its run time) while a 20-hour batch costs ~50 polls.
POLL_CAP_SECONDS = 300.0
# After a cancel, how long to wait for the batch to end before giving up on its results.
CANCEL_GRACE_SECONDS = 120.0
# A results download that breaks off is retried this often, each time skipping what already arrived.
DOWNLOAD_ATTEMPTS = 3
# Polls may fail for a while (network, 5xx); only this many failures in a row end the wait.
MAX_POLL_FAILURES = 20


def next_poll_wait(first: float, attempt: int, elapsed: float) -> float:
    """Exponential from `first`, capped at max(POLL_CAP_SECONDS, 10 % of elapsed)."""
    grown = first * (2.0 ** min(attempt, 60))
    return max(first, min(grown, max(POLL_CAP_SECONDS, 0.1 * elapsed)))


@dataclass
class RunResult:
    mode: str
    status: str
    batch_id: str | None
    totals: Totals
    events: list[str] = field(default_factory=list)


Log = Callable[[str], None]


class Engine:
    def __init__(
        self,
        provider: Provider,
        spec: RunSpec,
        writer: ResultWriter,
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
        self.events: list[str] = []

    # -- entry points ----------------------------------------------------------------------------

    def run_sync(self, requests: Sequence[PromptRequest]) -> RunResult:
        # Sync mode is chosen for latency: no provider should trade speed for price here.
        self._fallback(requests, patient=False)
        return self._finish("sync", None)

    def run_batch(self, requests: Sequence[PromptRequest], batch_id: str | None = None) -> RunResult:
        if batch_id is None:
            try:
                batch_id = self.provider.submit(requests, self.spec)
            except ProviderError as exc:
                if exc.fatal:
                    self._event(f"{exc}; nothing was run")
                    for request in requests:
                        self.writer.write(
                            Outcome(request.custom_id, Status.ERRORED, error=str(exc)), request.source, Via.BATCH
                        )
                    return self._finish("batch", None)
                self._event(f"{exc}; running all {len(requests)} requests synchronously")
                self._fallback(requests)
                return self._finish("batch+fallback", None)
            finally:
                self._take_provider_events()
            self.state.submitted(batch_id, [r.custom_id for r in requests])
            self.log(f"Submitted batch {batch_id} with {len(requests)} requests")
        else:
            self.state.collecting(batch_id, [r.custom_id for r in requests])
            self.log(f"Collecting batch {batch_id}")

        ended = self._wait(batch_id)
        if not ended:
            if self.on_timeout == "leave":
                self._event(f"deadline passed; batch {batch_id} left running (on-timeout: leave)")
                for request in requests:
                    self.writer.write(
                        Outcome(request.custom_id, Status.PENDING, error="left in the batch; collect later"),
                        request.source,
                        Via.BATCH,
                    )
                self.state.pending()
                return self._finish("pending", batch_id)
            ended = self._cancel(batch_id)

        leftovers: list[PromptRequest] = list(requests)
        if ended:
            leftovers = self._collect(batch_id, requests)
        if leftovers:
            self._fallback(leftovers)
        mode = "batch+fallback" if self.writer.totals.via[Via.SYNC] else "batch"
        return self._finish(mode, batch_id)

    # -- steps -----------------------------------------------------------------------------------

    def _wait(self, batch_id: str) -> bool:
        """Poll until the batch ends (True) or the deadline passes (False)."""
        started = self.clock()
        attempt = failures = 0
        while True:
            try:
                status = self.provider.status(batch_id)
                failures = 0
            except ProviderError as exc:
                failures += 1
                self.warn(f"{exc} (poll {attempt + 1}; retrying until the deadline)")
                if failures >= MAX_POLL_FAILURES:
                    self._event(f"{failures} status checks in a row failed; stopped waiting for {batch_id}")
                    return False
            else:
                if status.state in (BatchState.ENDED, BatchState.FAILED):
                    if status.error:
                        self._event(f"batch {batch_id} failed: {status.error}")
                    return True
            now = self.clock()
            remaining = self.deadline - now
            if remaining <= 0:
                return False
            wait = min(next_poll_wait(self.poll_interval, attempt, now - started), remaining)
            attempt += 1
            self.sleep(wait)

    def _cancel(self, batch_id: str) -> bool:
        """Cancel so nothing still queued is billed, then wait briefly for the batch to end."""
        self._event(f"deadline passed; canceled batch {batch_id} and kept what it finished")
        try:
            self.provider.cancel(batch_id)
        except ProviderError as exc:
            self.warn(str(exc))
        grace_end = self.clock() + CANCEL_GRACE_SECONDS
        attempt = 0
        while True:
            try:
                if self.provider.status(batch_id).state in (BatchState.ENDED, BatchState.FAILED):
                    return True
            except ProviderError as exc:
                self.warn(str(exc))
            remaining = grace_end - self.clock()
            if remaining <= 0:
                self._event(
                    f"batch {batch_id} did not end within {CANCEL_GRACE_SECONDS:.0f}s of the cancel; "
                    "its requests run synchronously and any it still finishes may be billed"
                )
                return False
            self.sleep(min(next_poll_wait(min(self.poll_interval, 1.0), attempt, 0.0), 5.0, remaining))
            attempt += 1

    def _collect(self, batch_id: str, requests: Sequence[PromptRequest]) -> list[PromptRequest]:
        """Write every succeeded result; return the requests to rerun synchronously."""
        sources = {r.custom_id: r.source for r in requests}
        unfinished: dict[str, Outcome] = {}
        complete = False
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                for outcome in self.provider.results(batch_id):
                    cid = outcome.custom_id
                    if cid in self.writer.written:
                        continue  # a retried download repeats what the first one gave
                    if outcome.status is Status.SUCCEEDED or cid not in sources:
                        self.writer.write(outcome, sources.get(cid, ""), Via.BATCH)
                    else:
                        unfinished[cid] = outcome
                complete = True
                break
            except ProviderError as exc:
                self.warn(f"{exc} (download attempt {attempt} of {DOWNLOAD_ATTEMPTS})")
        self.writer.flush()
        missing = [r for r in requests if r.custom_id not in self.writer.written and r.custom_id not in unfinished]
        if missing and not complete:
            # The batch may well have answered these: rerunning them would pay twice. Leave them for a
            # later collect of the same batch.
            self._event(
                f"batch {batch_id}: results of {len(missing)} requests could not be downloaded; "
                f"collect them later with batch-id {batch_id}"
            )
            for request in missing:
                self.writer.write(
                    Outcome(request.custom_id, Status.PENDING, error="results not downloaded; collect later"),
                    request.source,
                    Via.BATCH,
                )
            self.state.pending()
        counts = {s: sum(1 for o in unfinished.values() if o.status is s) for s in Status}
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        if complete and missing:
            parts.append(f"{len(missing)} without a result")
        if parts:
            self._event(f"batch {batch_id}: {', '.join(parts)}; rerunning them synchronously")
        return [r for r in requests if r.custom_id not in self.writer.written]

    def _fallback(self, requests: Iterable[PromptRequest], *, patient: bool = True) -> None:
        todo = list(requests)
        if not todo:
            return
        self.log(f"Running {len(todo)} requests synchronously ({self.concurrency} at a time)")
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            run = functools.partial(self._sync_one, patient=patient)
            for request, outcome in zip(todo, pool.map(run, todo), strict=True):
                self.writer.write(outcome, request.source, Via.SYNC)
        self.writer.flush()

    def _sync_one(self, request: PromptRequest, patient: bool = True) -> Outcome:
        # A fallback may use the time left before the deadline (Gemini then tries its half-price Flex tier).
        remaining = max(0.0, self.deadline - self.clock()) if patient else None
        try:
            return self.provider.run_sync(request, self.spec, deadline_remaining=remaining)
        except Exception as exc:  # one bad request must not lose the others' results
            return Outcome(request.custom_id, Status.ERRORED, error=f"{type(exc).__name__}: {exc}")

    def _finish(self, mode: str, batch_id: str | None) -> RunResult:
        totals = self.writer.totals
        if mode == "pending":
            status = "pending"
        elif totals.requests and totals.succeeded == totals.requests:
            status = "succeeded"
        elif totals.succeeded:
            status = "partial"
        else:
            status = "failed"
        if totals.statuses[Status.PENDING] and mode != "pending":
            status = "partial"  # some results are still with the provider; state.json says where
        elif mode != "pending":
            self.state.done(status)
        return RunResult(mode, status, batch_id, totals, self.events)

    def _take_provider_events(self) -> None:
        for message in self.provider.events:
            self._event(message)
        self.provider.events.clear()

    def _event(self, message: str) -> None:
        self.events.append(message)
        self.warn(message)
