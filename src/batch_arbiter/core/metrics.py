"""The token-metrics log: one JSON line per run, appended safely, and read back for the reports.

The layout is the origin's token-metrics record (`ts`, `workflow`, `tier`, `engine`, `model`, token
counts, `et`, `run_id`, `context`), so its tooling can read our lines, extended with what a batch run
adds: `workload`, `provider`, `mode`, `requests`, `cost_usd`, `sync_cost_usd`, `savings_usd`,
`cache_creation_1h_tokens` (1-hour cache writes are priced higher, and batch runs write them), and the
runner's share: `runner_minutes`, `runner_cost_usd`, `waiting_cost_usd` and `net_savings_usd` (savings less
the runner minutes spent waiting on the batch).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batch_arbiter.core.pricing import PriceTable, PricingError
from batch_arbiter.core.records import Usage, as_count

# The origin's Effective Tokens: model multiplier (input price relative to this model) times
# 1.0 x input + 0.1 x cache reads + 4.0 x output.
ET_BASELINE_MODEL = "claude-haiku-4-5"
# The fields read as numbers; some writers log them as strings.
_NUMBERS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "cache_creation_1h_tokens",
        "requests",
        "et",
        "cost_usd",
        "sync_cost_usd",
        "savings_usd",
        "runner_minutes",
        "runner_cost_usd",
        "waiting_cost_usd",
        "net_savings_usd",
        "waited_minutes",
    }
)


def et_multiplier(model: str, prices: PriceTable, on: date) -> float:
    """`model`'s input price relative to the baseline model's; 1.0 when a price is unknown, so ET never fails."""
    try:
        base = prices.rate(ET_BASELINE_MODEL, on).input
        return prices.rate(model, on).input / base if base > 0 else 1.0
    except PricingError:
        return 1.0


def effective_tokens(model: str, usage: Usage, prices: PriceTable, on: date) -> float:
    """The origin's Effective Tokens of one usage: tokens weighted by kind, times the model's price multiplier."""
    raw = usage.input_tokens + 0.1 * usage.cache_read_tokens + 4.0 * usage.output_tokens
    return round(et_multiplier(model, prices, on) * raw, 2)


def run_url(env: Mapping[str, str]) -> str:
    """The link to this workflow run, for a record's `context`; empty outside GitHub Actions."""
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not (repo and run_id):
        return ""
    server = env.get("GITHUB_SERVER_URL") or "https://github.com"
    return f"{server}/{repo}/actions/runs/{run_id}"


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line, whole, even when other jobs append to the same file at the same moment.

    O_APPEND makes every write land at the end; the exclusive lock keeps a line that needs more than
    one write() from interleaving with another writer's, and lets us repair a torn last line first.
    """
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _lock(fd)
        size = os.fstat(fd).st_size
        if size and _last_byte(fd, size) != b"\n":
            # A writer killed mid-line left it unterminated; start ours on a line of its own.
            line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _last_byte(fd: int, size: int) -> bytes:
    os.lseek(fd, size - 1, os.SEEK_SET)
    return os.read(fd, 1)


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: O_APPEND alone keeps single-write lines whole
        return
    # Some network filesystems refuse flock; appending still works there, only without the lock.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One token-usage record, from our runs or from the origin's per-call log."""

    ts: datetime
    workflow: str
    workload: str | None
    model: str
    engine: str
    tier: str
    usage: Usage
    run_id: str
    mode: str | None
    requests: int | None
    cost_usd: float | None
    sync_cost_usd: float | None
    source: str
    # What the run's runner cost, and the savings net of the runner minutes spent waiting on the batch;
    # None in records that do not carry them (older runs, the origin's per-call records).
    runner_cost_usd: float | None = None
    net_savings_usd: float | None = None
    # Minutes the run waited on its batches (runner minutes a collect-later pattern would not hold).
    waited_minutes: float | None = None

    @property
    def name(self) -> str:
        """The workload the record belongs to (origin records only name their workflow)."""
        return self.workload or self.workflow or "unknown"

    @property
    def run_key(self) -> str:
        """What groups records into one run: the run id, else the record's own file and line."""
        # The origin logs one record per call; its calls in one run share the run id.
        return self.run_id or self.source

    @property
    def batched(self) -> bool:
        """Whether the record ran through a batch, by its `mode` or (origin records) its `tier`."""
        return (self.mode or self.tier or "").startswith("batch")


@dataclass
class Log:
    """What `read` found: the records in time order, every line it skipped and why, and the files it read."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read(paths: Iterable[Path]) -> Log:
    """Every token-usage record in `paths`. Unreadable lines are reported, never fatal."""
    log = Log()
    for path in paths:
        log.files.append(str(path))
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.problems.append(f"{path}: cannot read ({exc.strerror})")
            continue
        # Records end at \n only: U+2028 and the like may stand raw inside a JSON string.
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except (ValueError, RecursionError):
                log.problems.append(f"{where}: not a JSON object; skipped")
                continue
            if not isinstance(data, dict):
                log.problems.append(f"{where}: not a JSON object; skipped")
                continue
            if data.get("kind"):
                continue  # the origin keeps other record kinds in the same file
            infinite = next((k for k, v in data.items() if _non_finite(v, numeric=k in _NUMBERS)), None)
            if infinite is not None:
                log.problems.append(f"{where}: `{infinite}` is not a finite number; skipped")
                continue
            entry = _entry(data, where)
            if entry is None:
                log.problems.append(f"{where}: no usable `ts`; skipped")
            else:
                log.entries.append(entry)
    log.entries.sort(key=lambda e: e.ts)
    return log


def _entry(data: Mapping[str, Any], where: str) -> Entry | None:
    try:
        ts = datetime.fromisoformat(str(data.get("ts", "")))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    usage = Usage(
        input_tokens=as_count(data.get("input_tokens")),
        output_tokens=as_count(data.get("output_tokens")),
        cache_read_tokens=as_count(data.get("cache_read_tokens")),
        cache_creation_tokens=as_count(data.get("cache_creation_tokens")),
        cache_creation_1h_tokens=as_count(data.get("cache_creation_1h_tokens")),
    )
    engine = str(data.get("engine") or "")
    provider = data.get("provider")
    if not engine and isinstance(provider, str):
        engine = provider  # the audit maps a provider's name and its engine alike
    return Entry(
        ts=ts.astimezone(UTC),
        workflow=str(data.get("workflow") or ""),
        workload=str(data["workload"]) if data.get("workload") else None,
        model=str(data.get("model") or ""),
        engine=engine,
        tier=str(data.get("tier") or ""),
        usage=usage,
        run_id=str(data.get("run_id") or ""),
        mode=str(data["mode"]) if data.get("mode") else None,
        requests=as_count(data["requests"]) if "requests" in data else None,
        cost_usd=_float(data.get("cost_usd")),
        sync_cost_usd=_float(data.get("sync_cost_usd")),
        source=where,
        runner_cost_usd=_float(data.get("runner_cost_usd")),
        net_savings_usd=_float(data.get("net_savings_usd")),
        waited_minutes=_float(data.get("waited_minutes")),
    )


def _non_finite(value: Any, numeric: bool) -> bool:
    """A number that is NaN or overflows to infinity; in a `numeric` field also such a string."""
    if isinstance(value, str) and numeric:
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
