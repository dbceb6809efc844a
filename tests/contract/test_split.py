"""Runs over a provider's per-batch limits: split, submitted, polled and collected together as one run."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

from batch_arbiter.action.runner import Runner
from batch_arbiter.core.records import PromptRequest
from batch_arbiter.emulator import Emulator, Fault
from batch_arbiter.providers import ProviderConfig, RunSpec, make_provider
from batch_arbiter.providers.registry import price_table
from batch_arbiter.run.engine import Engine, split
from batch_arbiter.run.results import ResultWriter
from batch_arbiter.run.state import RunState
from support import API_KEY, run_action, write_prompts


def requests(n: int, size: int = 10) -> list[PromptRequest]:
    return [PromptRequest(f"r{i}", f"r{i}.md", "x" * size) for i in range(n)]


def test_split_respects_both_limits_and_keeps_order() -> None:
    chunks = split(requests(7), max_requests=3, max_bytes=10**9)
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [r.custom_id for c in chunks for r in c] == [f"r{i}" for i in range(7)]
    # Each request weighs its text plus a 1 KiB envelope: 3 fit under 3.5 KiB, a fourth does not.
    by_bytes = split(requests(7, size=100), max_requests=100, max_bytes=3 * 1124 + 100)
    assert [len(c) for c in by_bytes] == [3, 3, 1]
    assert split([], 3, 100) == []
    # A single request over the byte limit still goes alone rather than vanishing.
    assert [len(c) for c in split(requests(2, size=5000), 10, 100)] == [1, 1]


def engine_for(
    tmp_path: Path, emulator: Emulator, max_requests: int, batch_ids: list[str] | None = None, out: str = "out"
) -> tuple[Engine[ResultWriter], ResultWriter, RunState]:
    provider = make_provider("anthropic", ProviderConfig(api_key=API_KEY, base_url=emulator.base_url))
    provider.max_batch_requests = max_requests  # a small limit on this instance, to split 5 requests
    writer = ResultWriter(tmp_path / out, price_table(), "claude-sonnet-5-5", date(2026, 11, 24))
    state = RunState(tmp_path / out / "state.json", "anthropic", "claude-sonnet-5-5", "w", "")
    runner = Runner(workspace=tmp_path, stream=io.StringIO())
    engine = Engine(
        provider,
        RunSpec("claude-sonnet-5-5", max_tokens=64),
        writer,
        state,
        deadline=1e12,
        poll_interval=0.02,
        log=runner.log,
        warn=runner.warning,
    )
    return engine, writer, state


def test_split_run_is_submitted_polled_and_collected_as_one(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {"r3": "errored"}
    engine, writer, state = engine_for(tmp_path, emulator, max_requests=2)
    result = engine.run_batch(requests(5))
    writer.close()
    assert len(emulator.calls("create")) == 3
    assert [len(c.body["requests"]) for c in emulator.calls("create")] == [2, 2, 1]
    assert len(result.batch_ids) == 3 and result.batch_id == ",".join(result.batch_ids)
    saved = json.loads(state.path.read_text())  # type: ignore[union-attr]
    assert saved["batch_ids"] == result.batch_ids and saved["batch_id"] == result.batch_id
    assert sorted(saved["custom_ids"]) == [f"r{i}" for i in range(5)]
    lines = [json.loads(x) for x in writer.path.read_text().splitlines()]
    assert sorted(r["custom_id"] for r in lines) == [f"r{i}" for i in range(5)]
    assert {r["custom_id"]: r["via"] for r in lines}["r3"] == "sync" and len(emulator.calls("messages")) == 1
    assert result.status == "succeeded" and result.mode == "batch+fallback"
    assert "5 requests split into 3 batches" in " ".join(result.events)


def test_split_run_left_pending_is_collected_later_by_all_its_ids(tmp_path: Path, emulator: Emulator) -> None:
    write_prompts(
        tmp_path / "ws", {f"p/{i}.json": json.dumps({"custom_id": f"r{i}", "prompt": "x" * 10}) for i in range(4)}
    )
    emulator.config.processing_seconds = 1.0
    engine, writer, _ = engine_for(tmp_path, emulator, max_requests=2)
    engine.deadline = 0.0  # already past: leave everything with the provider
    engine.on_timeout = "leave"
    first = engine.run_batch(requests(4))
    writer.close()
    assert first.mode == "pending" and len(first.batch_ids) == 2
    # A later run of the action collects both from one `batch-id` input, without a new batch.
    later = run_action(
        tmp_path / "ws", emulator, prompt_files="p/*.json", mode="batch", batch_id=first.batch_id, poll_interval=0.2
    )
    assert later.code == 0, later.log
    assert len(emulator.calls("create")) == 2
    assert later.outputs["batch-id"] == first.batch_id
    assert sorted(r["custom_id"] for r in later.results) == ["r0", "r1", "r2", "r3"]
    assert {r["via"] for r in later.results} == {"batch"} and emulator.calls("messages") == []


def test_rejected_key_on_a_later_batch_still_collects_the_earlier_one(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("create", 401, skip=1)]
    engine, writer, state = engine_for(tmp_path, emulator, max_requests=2)
    result = engine.run_batch(requests(4))
    writer.close()
    (batch_id,) = emulator.anthropic.batch_ids()
    assert result.batch_ids == [batch_id] and state.batch_ids == [batch_id]
    lines = {r["custom_id"]: r for r in map(json.loads, writer.path.read_text().splitlines())}
    assert {cid: r["status"] for cid, r in lines.items()} == {
        "r0": "succeeded",
        "r1": "succeeded",
        "r2": "errored",
        "r3": "errored",
    }
    assert emulator.calls("messages") == []


def test_split_leave_with_one_batch_done_is_pending_not_failed(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {"r2": "hang", "r3": "hang"}
    engine, writer, _ = engine_for(tmp_path, emulator, max_requests=2)
    engine.deadline = engine.clock() + 1.0
    engine.on_timeout = "leave"
    result = engine.run_batch(requests(4))
    writer.close()
    assert result.status == "pending" and result.totals.failed == 0
    statuses = {r["custom_id"]: r["status"] for r in map(json.loads, writer.path.read_text().splitlines())}
    assert statuses == {"r0": "succeeded", "r1": "succeeded", "r2": "pending", "r3": "pending"}


def test_batch_stuck_canceling_leaves_its_requests_pending_not_paid_twice(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.default_outcome = "hang"
    emulator.config.cancel_seconds = 60.0  # stays `canceling` far longer than the grace below
    engine, writer, state = engine_for(tmp_path, emulator, max_requests=10)
    engine.deadline = engine.clock() + 0.5
    engine.cancel_grace = 0.5
    result = engine.run_batch(requests(3))
    writer.close()
    assert len(emulator.calls("cancel")) == 1 and emulator.calls("messages") == []
    assert {r["status"] for r in map(json.loads, writer.path.read_text().splitlines())} == {"pending"}
    assert result.status == "partial" and json.loads(state.path.read_text())["status"] == "pending"  # type: ignore[union-attr]
