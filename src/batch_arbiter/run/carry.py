"""Results an earlier run of the same batches settled, carried into this run instead of paid again."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batch_arbiter.core.records import Status
from batch_arbiter.files import write_own
from batch_arbiter.run.results import ResultWriter

__all__ = ["EARLIER_FILE", "carry_settled", "set_aside"]

EARLIER_FILE = "results.earlier.jsonl"


def set_aside(results: Path) -> Path | None:
    """Move an earlier run's results of the same batches out of the way of the new results file.

    A set-aside file already there is what a run stopped mid-carry left: it is merged with, never
    overwritten by, the results file, so no settled (paid) result is lost however often runs stop.
    """
    aside = results.with_name(EARLIER_FILE)
    if not results.exists():
        return aside if aside.exists() else None
    if not aside.exists():
        os.replace(results, aside)
        return aside
    merged, _ = read_tolerantly(aside)
    for custom_id, record in read_tolerantly(results)[0].items():
        if custom_id not in merged or merged[custom_id].get("status") == Status.PENDING:
            merged[custom_id] = record
    tmp = aside.with_suffix(".tmp")
    write_own(tmp, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged.values()))
    os.replace(tmp, aside)
    results.unlink()
    return aside


def read_tolerantly(path: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """The result records of `path` by custom id, and how many lines could not be read (a run killed
    mid-write leaves its last line torn)."""
    records: dict[str, dict[str, Any]] = {}
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
                skipped += 1
                continue
            records[record["custom_id"]] = record
    return records, skipped


def carry_settled(earlier: Path, writer: ResultWriter) -> tuple[int, int]:
    """Keep what an earlier run of the same batches settled (answers, sync reruns): those requests are
    not run again. Its pending lines are what this run collects. Returns (kept, unreadable lines)."""
    records, skipped = read_tolerantly(earlier)
    kept = 0
    for custom_id, record in records.items():
        if record.get("status") != Status.PENDING and custom_id not in writer.written:
            writer.carry(record)
            kept += 1
    writer.flush()
    earlier.unlink()
    return kept, skipped
