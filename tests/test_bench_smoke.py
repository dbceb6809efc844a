"""The benchmark scripts at a tiny size, so they cannot rot (the real runs are in bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


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
