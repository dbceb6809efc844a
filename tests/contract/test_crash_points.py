"""A run killed at each step of a batch with a fallback, then run again: every request paid once, none lost.

The action's process is started as the runner starts it, SIGKILLed once the emulator shows the run has
reached a step (the batch created, polled, its results being read, the fallback part-paid), and then run
again in the same workspace with the same inputs. The second run must collect the first run's batch
(never create another), keep what the first run had settled, and pay synchronously only for what no run
has an answer for.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.emulator import Emulator
from support import PROVIDERS, ProviderProfile, runner_env, start_entrypoint, write_prompts

PROMPTS = {f"prompts/p{i}.md": f"Prompt number {i}." for i in range(8)}
TEXT_OF = {f"prompts_p{i}_md": f"Prompt number {i}." for i in range(8)}
# The batch does not answer these four: they are what the fallback pays for, once each.
UNANSWERED = {
    "prompts_p0_md": "errored",
    "prompts_p1_md": "errored",
    "prompts_p2_md": "expired",
    "prompts_p3_md": "expired",
}
CONCURRENCY = 2
SYNC_LATENCY = 0.25


def results_route(provider: ProviderProfile, emulator: Emulator) -> str:
    """Where results are downloaded; Gemini streams them only from a file, so its input is made one."""
    if provider.name == "anthropic":
        return "results"
    emulator.config.gemini_inline_limit_bytes = 64
    return "files_download"


def batches(provider: ProviderProfile, emulator: Emulator) -> list[str]:
    if provider.name == "anthropic":
        return emulator.anthropic.batch_ids()
    return [job.name for job in emulator.gemini.jobs()]


def answered(emulator: Emulator, route: str) -> int:
    return sum(c.status == 200 for c in emulator.calls(route))


def in_progress(emulator: Emulator, route: str) -> int:
    # The emulator records a call just before it sends the answer: a results call recorded is one
    # whose body is still on its way to the client (or only just arrived).
    return len(emulator.calls(route))


# Each kill point: how the emulator is set up for it, and when the run has reached it.
Reached = Callable[[ProviderProfile, Emulator, str, Path], bool]
KILL_POINTS: dict[str, tuple[float, Reached]] = {
    # The provider has accepted the batch: its create is answered (the emulator records a call just
    # before it sends the answer), so the kill lands as the answer reaches the process, or just after.
    "after-create": (1.0, lambda p, e, r, f: answered(e, p.create) >= 1),
    # Polled three times while the batch still runs.
    "mid-poll": (1.0, lambda p, e, r, f: answered(e, p.status) >= 3),
    # The results download has been answered and is in flight (no knob slows it: it is small, so the
    # kill lands while it is read or just after).
    "mid-download": (0.05, lambda p, e, r, f: in_progress(e, r) >= 1),
    # Two of the four fallback answers written to results.jsonl: the other two are in flight (two at a
    # time, each taking SYNC_LATENCY), paid by the provider but never received by the killed process.
    "mid-fallback": (0.05, lambda p, e, r, f: len(sync_kept(f)) >= 2),
}


def read_results(path: Path) -> list[dict[str, Any]]:
    """results.jsonl as a killed process left it: a last line cut short by the kill is not a result."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def sync_kept(path: Path) -> set[str]:
    """The requests whose synchronous answer is in results.jsonl."""
    return {r["custom_id"] for r in read_results(path) if r["status"] == "succeeded" and r["via"] == "sync"}


def sync_texts(provider: ProviderProfile, calls: list[Any]) -> list[str]:
    """The prompt of each answered synchronous call."""
    texts = []
    for call in calls:
        if call.status != 200 or not call.body:
            continue
        if provider.name == "anthropic":
            texts.append(call.body["messages"][-1]["content"])
        else:
            texts.append(call.body["contents"][-1]["parts"][0]["text"])
    return texts


@pytest.mark.parametrize("provider_name", sorted(PROVIDERS))
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_at_any_step_and_run_again_pays_each_request_once_and_loses_none(
    tmp_path: Path, emulator: Emulator, provider_name: str, point: str
) -> None:
    provider = PROVIDERS[provider_name]
    processing, reached = KILL_POINTS[point]
    emulator.config.processing_seconds = processing
    emulator.config.outcomes = dict(UNANSWERED)
    emulator.config.sync_latency_seconds = SYNC_LATENCY
    route = results_route(provider, emulator)
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, PROMPTS)
    inputs = {
        "prompt_files": "prompts/*",
        "mode": "batch",
        "provider": provider.name,
        "max_concurrency": str(CONCURRENCY),
    }
    results = ws / "batch-results" / "results.jsonl"

    proc = start_entrypoint(ws, runner_env(ws, files, emulator, **inputs))
    deadline = time.monotonic() + 20
    while not reached(provider, emulator, route, results) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, f"the run ended before reaching {point}: {proc.communicate()[0]}"
    assert reached(provider, emulator, route, results), f"{point} not reached in time"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    state_path = ws / "batch-results" / "state.json"
    at_kill = f"killed {point}; state.json then: {state_path.read_text() if state_path.exists() else 'absent'}"
    # A sync call the emulator is still answering (sleeping its latency) is paid all the same: wait
    # for it to be recorded before counting what the first run paid.
    time.sleep(SYNC_LATENCY + 0.2)
    first_calls = emulator.calls(provider.sync)
    paid_first = sync_texts(provider, first_calls)
    kept_first = sync_kept(results)

    rerun = subprocess.run(
        [sys.executable, "-m", "batch_arbiter"],
        cwd=ws,
        env=runner_env(ws, files, emulator, **inputs),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    # One batch across both runs: the re-run collected the first run's batch.
    assert len(batches(provider, emulator)) == 1, f"{at_kill}\nre-run:\n{rerun.stdout}"
    assert answered(emulator, provider.create) == 1
    # Every request once in the final results, answered.
    final = read_results(results)
    assert sorted(r["custom_id"] for r in final) == sorted(TEXT_OF), f"{at_kill}\nre-run:\n{rerun.stdout}"
    assert {r["custom_id"]: r["status"] for r in final} == dict.fromkeys(TEXT_OF, "succeeded")
    via = {r["custom_id"]: r["via"] for r in final}
    assert {cid for cid, v in via.items() if v == "sync"} == set(UNANSWERED)

    # Paid synchronously: only what the batch did not answer (a batch answer is never paid again).
    paid_all = sync_texts(provider, emulator.calls(provider.sync))
    paid_second = sync_texts(provider, emulator.calls(provider.sync)[len(first_calls) :])
    assert set(paid_all) <= {TEXT_OF[cid] for cid in UNANSWERED}
    # The re-run pays each of the rest once, and nothing the first run kept.
    assert len(paid_second) == len(set(paid_second))
    assert not set(paid_second) & {TEXT_OF[cid] for cid in kept_first}
    # The exact count. The first run paid `paid_first` sync answers, and `kept_first` of them reached
    # results.jsonl before the kill. The difference are the answers a SIGKILL loses: calls in flight
    # at the kill, which the provider answers (and bills) though no process is left to write them.
    # Every answer that arrived was written at once, so only in-flight calls can be lost, and at most
    # `max-concurrency` calls are in flight at a time (no sync call is retried here: no faults).
    lost = len(paid_first) - len(kept_first)
    assert 0 <= lost <= CONCURRENCY, (paid_first, kept_first)
    assert len(paid_all) == len(UNANSWERED) + lost
