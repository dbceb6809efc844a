"""The benchmark scripts at a tiny size, so they cannot rot (the real runs are in bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_batch_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_batch.py"), "--sizes", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["requests"] == 20
    assert row["plain_s"] > 0 and row["action_s"] > 0 and row["action_mib"] > 0


def run_json(script: str, *args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_poll_schedule_meets_its_targets_for_a_20_hour_batch() -> None:
    result = run_json("poll_schedule.py", "--hours", "20", "--first", "15")
    assert result["polls"] <= 250
    assert result["worst_lag_ratio"] <= 1.0 + 1e-9  # equal only in the limit of ending just after a poll


def test_sync_fallback_smoke_loses_nothing_under_rate_limits() -> None:
    result = run_json("sync_fallback.py", "--requests", "30", "--limit", "10", "--concurrency", "4")
    assert result["succeeded"] == result["result_lines"] == 30
    assert result["rate_limited_calls"] > 0


def test_startup_smoke() -> None:
    result = run_json("startup.py", "--runs", "1")
    assert result["median_s"] > 0 and result["imports"]


def test_structured_bench_smoke() -> None:
    (row,) = run_json("structured.py", "--sizes", "20")
    assert row["requests"] == 20 and row["plain_s"] > 0 and row["structured_s"] > 0


def test_bench_agents_smoke() -> None:
    result = run_json("bench_agents.py", "--conversations", "4")
    assert result["conversations"] == 4 and result["turns"] == 12
    assert result["plain_s"] > 0 and result["action_s"] > 0 and result["action_mib"] > 0
