"""Results an earlier run of the same batches settled, carried into this run instead of paid again."""

from __future__ import annotations

import json
import os
from pathlib import Path

from batch_arbiter.core.records import Status
from batch_arbiter.run.results import ResultWriter

__all__ = ["carry_settled", "set_aside"]


def set_aside(results: Path) -> Path | None:
    """Move an earlier run's results of the same batches out of the way of the new results file."""
    if not results.exists():
        return None
    aside = results.with_name("results.earlier.jsonl")
    os.replace(results, aside)
    return aside


def carry_settled(earlier: Path, writer: ResultWriter) -> int:
    """Keep what an earlier run of the same batches settled (answers, sync reruns): those requests are
    not run again. Its pending lines are what this run collects. Returns how many were kept."""
    kept = 0
    with earlier.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record.get("status") != Status.PENDING and record["custom_id"] not in writer.written:
                writer.carry(record)
                kept += 1
    earlier.unlink()
    return kept
