"""The engine's deadline and cancel edges against an in-memory provider and a fake clock: hours of
waiting run in milliseconds, and every sleep the engine asks for is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path

import pytest

from batch_arbiter.core.catalog import ModelCaps
from batch_arbiter.core.records import Outcome, PromptRequest, Status, Usage
from batch_arbiter.providers.base import BatchState, BatchStatus, RunSpec
from batch_arbiter.providers.registry import price_table
from batch_arbiter.run.engine import CANCEL_GRACE_SECONDS, POLL_CAP_SECONDS, Engine
from batch_arbiter.run.results import ResultWriter
from batch_arbiter.run.state import RunState

MODEL = "claude-sonnet-5-5"


class Clock:
    """Monotonic time that only moves when the engine sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeProvider:
    """A batch API in memory: a batch ends `ends_after` seconds after it is created (never, if None)."""

    name = "fake"
    max_batch_requests = 100
    max_batch_bytes = 10**9

    def __init__(self, clock: Clock, ends_after: float | None, errored: Sequence[str] = ()) -> None:
        self.clock = clock
        self.ends_after = ends_after
        self.errored = set(errored)
        self.events: list[str] = []
        self.deadline: float | None = None
        self.batches: dict[str, tuple[float, list[str]]] = {}
        self.cancelled: list[str] = []
        self.sync_calls: list[str] = []
        # After a cancel, a batch that ends at once (True) or stays `canceling` (False).
        self.cancel_ends = True

    def model_caps(self, model: str) -> ModelCaps | None:
        return None

    def count_tokens(self, request: PromptRequest, spec: RunSpec) -> int | None:
        return None

    def submit(self, requests: Sequence[PromptRequest], spec: RunSpec, *, token: str | None = None) -> str:
        batch_id = f"b{len(self.batches)}"
        self.batches[batch_id] = (self.clock(), [r.custom_id for r in requests])
        return batch_id

    def find_submitted(self, token: str, since: datetime, size: int) -> str | None:
        return None

    def _ended(self, batch_id: str) -> bool:
        created, _ = self.batches[batch_id]
        if batch_id in self.cancelled:
            return self.cancel_ends
        return self.ends_after is not None and self.clock() - created >= self.ends_after

    def status(self, batch_id: str) -> BatchStatus:
        if self._ended(batch_id):
            return BatchStatus(batch_id, BatchState.ENDED)
        return BatchStatus(batch_id, BatchState.CANCELING if batch_id in self.cancelled else BatchState.RUNNING)

    def cancel(self, batch_id: str) -> None:
        self.cancelled.append(batch_id)

    def results(self, batch_id: str) -> Iterator[Outcome]:
        _, ids = self.batches[batch_id]
        for cid in ids:
            if batch_id in self.cancelled:
                yield Outcome(cid, Status.CANCELED)
            elif cid in self.errored:
                yield Outcome(cid, Status.ERRORED, error="boom")
            else:
                yield Outcome(cid, Status.SUCCEEDED, MODEL, f"answer {cid}", Usage(10, 5))

    def run_sync(self, request: PromptRequest, spec: RunSpec, *, deadline_remaining: float | None = None) -> Outcome:
        self.sync_calls.append(request.custom_id)
        return Outcome(request.custom_id, Status.SUCCEEDED, MODEL, f"sync {request.custom_id}", Usage(10, 5))

    def close(self) -> None:
        pass


def requests(n: int) -> list[PromptRequest]:
    return [PromptRequest(f"r{i}", f"r{i}.md", f"prompt {i}") for i in range(n)]


def engine(
    tmp_path: Path, provider: FakeProvider, clock: Clock, *, deadline: float, on_timeout: str
) -> Engine[ResultWriter]:
    writer = ResultWriter(tmp_path, price_table(), MODEL, date(2026, 11, 24))
    state = RunState(tmp_path / "state.json", "anthropic", MODEL, "w", "")
    return Engine(
        provider,
        RunSpec(MODEL),
        writer,
        state,
        deadline=deadline,
        poll_interval=15.0,
        on_timeout=on_timeout,
        concurrency=2,
        log=lambda _: None,
        warn=lambda _: None,
        clock=clock,
        sleep=clock.sleep,
    )


def lines(tmp_path: Path) -> dict[str, dict[str, object]]:
    return {r["custom_id"]: r for r in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}


def test_a_long_batch_is_polled_with_backoff_and_collected_without_any_sync_call(tmp_path: Path) -> None:
    clock = Clock()
    provider = FakeProvider(clock, ends_after=6 * 3600)
    eng = engine(tmp_path, provider, clock, deadline=24 * 3600, on_timeout="fallback")
    result = eng.run_batch(requests(3))
    eng.writer.close()
    assert result.status == "succeeded" and provider.sync_calls == []
    # Waits grow from the poll interval, each capped at max(5 min, 10 % of the time already waited).
    assert clock.sleeps[0] == 15.0
    assert all(later >= earlier for earlier, later in zip(clock.sleeps, clock.sleeps[1:], strict=False))
    elapsed = 0.0
    for wait in clock.sleeps:
        assert wait <= max(POLL_CAP_SECONDS, 0.1 * elapsed) + 1e-9
        elapsed += wait
    # A batch that ends after 6 hours is noticed within 10 % of that, and in few polls.
    assert 6 * 3600 <= clock.now <= 6 * 3600 * 1.1 and len(clock.sleeps) < 40
    assert {r["via"] for r in lines(tmp_path).values()} == {"batch"}


def test_no_sleep_runs_past_the_deadline_and_the_fallback_runs_only_what_the_batch_did_not_finish(
    tmp_path: Path,
) -> None:
    clock = Clock()
    provider = FakeProvider(clock, ends_after=None)
    eng = engine(tmp_path, provider, clock, deadline=1000.0, on_timeout="fallback")
    result = eng.run_batch(requests(4))
    eng.writer.close()
    assert provider.cancelled == ["b0"]
    # Polling stops exactly at the deadline; the cancel is confirmed within seconds, not the grace.
    assert clock.now <= 1000.0 + 5.0
    assert sorted(provider.sync_calls) == ["r0", "r1", "r2", "r3"]
    assert result.mode == "batch+fallback" and result.status == "succeeded"


def test_a_batch_still_canceling_after_the_grace_keeps_its_requests_pending_and_pays_nothing_twice(
    tmp_path: Path,
) -> None:
    clock = Clock()
    provider = FakeProvider(clock, ends_after=None)
    provider.cancel_ends = False
    eng = engine(tmp_path, provider, clock, deadline=600.0, on_timeout="fallback")
    result = eng.run_batch(requests(3))
    eng.writer.close()
    assert provider.sync_calls == []
    assert 600.0 + CANCEL_GRACE_SECONDS <= clock.now <= 600.0 + CANCEL_GRACE_SECONDS + 5.0
    assert {r["status"] for r in lines(tmp_path).values()} == {"pending"}
    assert result.status == "partial"


def test_leave_at_the_deadline_writes_every_request_pending_and_calls_nothing_synchronously(tmp_path: Path) -> None:
    clock = Clock()
    provider = FakeProvider(clock, ends_after=None)
    eng = engine(tmp_path, provider, clock, deadline=300.0, on_timeout="leave")
    result = eng.run_batch(requests(3))
    eng.writer.close()
    assert result.status == "pending" and provider.cancelled == [] and provider.sync_calls == []
    assert clock.now == pytest.approx(300.0)
    assert {r["status"] for r in lines(tmp_path).values()} == {"pending"}
    assert eng.state.status == "pending"


def test_only_errored_requests_of_an_ended_batch_run_synchronously(tmp_path: Path) -> None:
    clock = Clock()
    provider = FakeProvider(clock, ends_after=30.0, errored=["r1"])
    eng = engine(tmp_path, provider, clock, deadline=3600.0, on_timeout="fallback")
    result = eng.run_batch(requests(3))
    eng.writer.close()
    assert provider.sync_calls == ["r1"]
    assert {cid: r["via"] for cid, r in lines(tmp_path).items()} == {"r0": "batch", "r1": "sync", "r2": "batch"}
    assert result.status == "succeeded"
