"""`batch-arbiter report`: what was spent and saved, per workload, per model and per month.

Reads token-metrics logs. Our records carry their own cost (priced when the run ended); the origin's
per-call records carry tokens only, and are priced here at the rate in effect on their date, as
synchronous calls (which is how that tooling calls models).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from batch_arbiter.core.console import Console
from batch_arbiter.core.metrics import Entry, Log, read
from batch_arbiter.core.pricing import PriceTable, PricingError, savings_percent
from batch_arbiter.core.records import Usage
from batch_arbiter.errors import InputError
from batch_arbiter.markdown import BATCH_COLOUR, SYNC_COLOUR, bar_chart, escape, money, table
from batch_arbiter.observatory.output import emit
from batch_arbiter.providers.registry import price_table

EXIT_OK, EXIT_BAD_INPUT = 0, 2


@dataclass
class Line:
    """Totals for one workload, model or month."""

    key: str
    runs: set[str] = field(default_factory=set)
    batch_runs: set[str] = field(default_factory=set)
    records: int = 0
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    sync_cost_usd: float = 0.0
    unpriced_records: int = 0
    runner_cost_usd: float = 0.0
    # What the savings lose to runner minutes spent waiting on batches (records that say so).
    waiting_cost_usd: float = 0.0

    @property
    def savings_usd(self) -> float:
        return self.sync_cost_usd - self.cost_usd

    @property
    def net_savings_usd(self) -> float:
        return self.savings_usd - self.waiting_cost_usd

    @property
    def savings_percent(self) -> float:
        return savings_percent(self.cost_usd, self.sync_cost_usd)

    def add(self, e: Entry, cost: tuple[float, float] | None) -> None:
        self.runs.add(e.run_key)
        if e.batched:
            self.batch_runs.add(e.run_key)
        self.records += 1
        self.requests += e.requests if e.requests is not None else 1
        self.usage.add(e.usage)
        self.runner_cost_usd += e.runner_cost_usd or 0.0
        if cost is not None and e.net_savings_usd is not None:
            self.waiting_cost_usd += (cost[1] - cost[0]) - e.net_savings_usd
        if cost is None:
            self.unpriced_records += 1
        else:
            self.cost_usd += cost[0]
            self.sync_cost_usd += cost[1]

    def as_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "runs": len(self.runs),
            "batch_runs": len(self.batch_runs),
            "records": self.records,
            "requests": self.requests,
            "input_tokens": u.input_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_creation_tokens": u.cache_creation_tokens,
            "output_tokens": u.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "sync_cost_usd": round(self.sync_cost_usd, 6),
            "savings_usd": round(self.savings_usd, 6),
            "savings_percent": round(self.savings_percent, 2),
            "runner_cost_usd": round(self.runner_cost_usd, 6),
            "net_savings_usd": round(self.net_savings_usd, 6),
            "unpriced_records": self.unpriced_records,
        }


@dataclass
class Spend:
    log: Log
    since: date | None
    total: Line
    workloads: dict[str, Line]
    models: dict[str, Line]
    months: dict[str, Line]
    priced_from_tokens: int
    unpriced: dict[str, int]

    @property
    def first(self) -> date | None:
        entries = self._entries()
        return entries[0].ts.date() if entries else None

    @property
    def last(self) -> date | None:
        entries = self._entries()
        return entries[-1].ts.date() if entries else None

    def _entries(self) -> list[Entry]:
        return [e for e in self.log.entries if self.since is None or e.ts.date() >= self.since]


def entry_cost(e: Entry, prices: PriceTable) -> tuple[float, float] | None:
    """(cost, same tokens synchronously) of one record; None when its model has no price."""
    if e.cost_usd is not None:
        return e.cost_usd, e.sync_cost_usd if e.sync_cost_usd is not None else e.cost_usd
    try:
        on = e.ts.date()
        return prices.cost(e.model, e.usage, on, batch=e.batched), prices.cost(e.model, e.usage, on, batch=False)
    except PricingError:
        return None


def build(log: Log, prices: PriceTable, since: date | None = None) -> Spend:
    groups: dict[str, dict[str, Line]] = {"workload": {}, "model": {}, "month": {}}
    keys: dict[str, Callable[[Entry], str]] = {
        "workload": lambda e: e.name,
        "model": lambda e: e.model or "(no model)",
        "month": lambda e: e.ts.strftime("%Y-%m"),
    }
    total = Line("total")
    priced_from_tokens = 0
    unpriced: dict[str, int] = defaultdict(int)
    for e in log.entries:
        if since is not None and e.ts.date() < since:
            continue
        cost = entry_cost(e, prices)
        if cost is None:
            unpriced[e.model or "(no model)"] += 1
        elif e.cost_usd is None:
            priced_from_tokens += 1
        total.add(e, cost)
        for group, key in keys.items():
            name = key(e)
            groups[group].setdefault(name, Line(name)).add(e, cost)
    return Spend(
        log,
        since,
        total,
        _by_cost(groups["workload"]),
        _by_cost(groups["model"]),
        dict(sorted(groups["month"].items())),
        priced_from_tokens,
        dict(sorted(unpriced.items())),
    )


def _by_cost(lines: dict[str, Line]) -> dict[str, Line]:
    return dict(sorted(lines.items(), key=lambda kv: (-kv[1].sync_cost_usd, kv[0])))


def _tokens(n: int) -> str:
    if n >= 10_000_000:
        return f"{n / 1_000_000:,.1f}M"
    if n >= 10_000:
        return f"{n / 1000:,.0f}k"
    return f"{n:,}"


def _rows(lines: dict[str, Line], label: Callable[[str], str]) -> list[list[str]]:
    rows = []
    for key, line in lines.items():
        u = line.usage
        rows.append(
            [
                label(key),
                f"{len(line.runs):,}",
                f"{len(line.batch_runs):,}",
                _tokens(u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens),
                _tokens(u.output_tokens),
                money(line.cost_usd),
                money(line.sync_cost_usd),
                money(line.savings_usd),
                f"{line.savings_percent:.1f}%",
            ]
        )
    return rows


HEADERS = ["Runs", "Via batch", "Input tokens", "Output tokens", "Spent", "All sync", "Saved", "Saved %"]


def to_markdown(s: Spend) -> str:
    t = s.total
    period = f"{s.first} to {s.last}" if s.first else "no records"
    since = f" (since {s.since})" if s.since else ""
    lines = [f"## batch-arbiter spend report: {period}{since}", ""]
    if not t.records:
        lines += ["The metrics log has no token records" + (" in this period." if s.since else "."), ""]
        return "\n".join(lines) + "\n"
    lines += [
        f"**{money(t.cost_usd)} spent**; the same tokens synchronously would have cost {money(t.sync_cost_usd)}: "
        f"**{money(t.savings_usd)} saved ({t.savings_percent:.1f}%)**, over {len(t.runs):,} runs "
        f"({len(t.batch_runs):,} via batch) of {len(s.workloads)} workload{'s' if len(s.workloads) != 1 else ''}.",
        "",
        *(
            [
                f"The runner cost {money(t.runner_cost_usd)}; net of the runner minutes spent waiting on batches "
                f"({money(t.waiting_cost_usd)}), batching saved **{money(t.net_savings_usd)}**.",
                "",
            ]
            if t.runner_cost_usd or t.waiting_cost_usd
            else []
        ),
        "### Per workload",
        "",
    ]
    right = list(range(1, 9))
    lines += table(["Workload", *HEADERS], _rows(s.workloads, escape), right)
    lines += ["", "### Per model", ""]
    lines += table(["Model", *HEADERS], _rows(s.models, lambda m: f"`{m}`"), right)
    lines += ["", "### Per month", ""]
    lines += table(["Month", *HEADERS], _rows(s.months, str), right)
    lines.append("")
    lines += bar_chart(
        "Spend per month (USD)",
        list(s.months),
        [
            ("the same tokens, every call synchronous", SYNC_COLOUR, [m.sync_cost_usd for m in s.months.values()]),
            ("what was spent", BATCH_COLOUR, [m.cost_usd for m in s.months.values()]),
        ],
        "USD",
    )
    lines += ["", "### Where the figures come from", ""]
    files = ", ".join(f"`{Path(f).name}`" for f in s.log.files)
    lines.append(f"- {t.records:,} records from {files}; a run is the records sharing a run id.")
    recorded = t.records - s.priced_from_tokens - sum(s.unpriced.values())
    lines.append(f"- {recorded:,} records carry the cost their run recorded (batch discount and fallbacks included).")
    if s.priced_from_tokens:
        lines.append(
            f"- {s.priced_from_tokens:,} records carry tokens only; they are priced at the rate in effect on "
            "their date, as synchronous calls unless their tier or mode says batch."
        )
    if s.unpriced:
        names = ", ".join(f"`{escape(m)}` ({n})" for m, n in s.unpriced.items())
        lines.append(f"- No price for {names}: their tokens are counted, their cost is left out.")
    if s.log.problems:
        lines += ["", "### Problems", ""] + [f"- {escape(p)}" for p in s.log.problems]
    return "\n".join(lines) + "\n"


def to_json(s: Spend) -> dict[str, Any]:
    return {
        "metrics_files": s.log.files,
        "since": s.since.isoformat() if s.since else None,
        "first": s.first.isoformat() if s.first else None,
        "last": s.last.isoformat() if s.last else None,
        "total": s.total.as_dict(),
        "workloads": {k: v.as_dict() for k, v in s.workloads.items()},
        "models": {k: v.as_dict() for k, v in s.models.items()},
        "months": {k: v.as_dict() for k, v in s.months.items()},
        "priced_from_tokens": s.priced_from_tokens,
        "unpriced_models": s.unpriced,
        "problems": s.log.problems,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`batch-arbiter report`'s flags."""
    parser.add_argument("--metrics", type=Path, nargs="+", required=True, metavar="FILE", help="token-metrics JSONL")
    parser.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD", help="only records from this date")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--pricing", type=Path, help="extra pricing rows (TSV)")


def command(args: argparse.Namespace, console: Console) -> int:
    """What the metrics logs named by `args` say was spent and saved, printed as Markdown or JSON."""
    missing = [str(p) for p in args.metrics if not p.is_file()]
    if missing:
        print(f"batch-arbiter report: metrics file not found: {', '.join(missing)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        prices = price_table(args.pricing)
    except InputError as exc:
        print(f"batch-arbiter report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    spend = build(read(args.metrics), prices, args.since)
    return emit(console, spend.log.problems, to_json(spend), to_markdown(spend), as_json=args.json)
