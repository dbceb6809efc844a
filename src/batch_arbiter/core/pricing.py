"""Token prices and cost math: the only place tokens become dollars."""

from __future__ import annotations

import csv
import fnmatch
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

from batch_arbiter.core.records import Usage
from batch_arbiter.core.tools import SERVER_TOOLS
from batch_arbiter.errors import InputError

BATCH_DISCOUNT = 0.5

_COLUMNS = ("model_glob", "effective_from", "input", "cache_read", "cache_write", "output")
# An optional seventh column makes a row a long-context tier: it prices requests whose prompt (input,
# cache reads and writes together) is above that many tokens. The six origin columns keep their meaning.
_TIER_COLUMN = "above_prompt_tokens"
# Long-context tiers live in their own file so that model-pricing.tsv stays in the origin's six columns.
_BUNDLED = ("core/data/model-pricing.tsv", "core/data/model-pricing-long-context.tsv")


class PricingError(InputError):
    """The pricing table is malformed or does not know a model."""


@dataclass(frozen=True, slots=True)
class PriceRules:
    """How one provider bills what the rate table does not say: each provider's adapter declares its own.

    `cache_write_1h_multiplier`: a 1-hour cache write costs this many times the input rate (1.0 where
    the provider has no 1-hour tier). `batch_discounts_cache_reads`: whether a cache hit inside a batch
    gets the batch discount too (Gemini prices it like any cache hit).
    """

    model_prefix: str
    cache_write_1h_multiplier: float = 1.0
    batch_discounts_cache_reads: bool = True


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per million tokens."""

    input: float
    cache_read: float
    cache_write: float
    output: float


@dataclass(frozen=True, slots=True)
class _Row:
    glob: str
    effective_from: date
    rate: Rate
    order: int
    # 0 for a base row; else the prompt size (tokens) above which this row's long-context rate applies.
    above_prompt_tokens: int = 0

    @property
    def specificity(self) -> int:
        return sum(ch not in "*?[]" for ch in self.glob)


def savings_percent(cost_usd: float, sync_cost_usd: float) -> float:
    """What routing saved, as a share of the synchronous price of the same tokens."""
    return 100.0 * (sync_cost_usd - cost_usd) / sync_cost_usd if sync_cost_usd > 0 else 0.0


class PriceTable:
    """Every price row the run knows, looked up by model and date; `rules` say how each provider bills."""

    def __init__(self, rows: Iterable[_Row], rules: Iterable[PriceRules] = ()) -> None:
        self._rows = list(rows)
        self._rules = tuple(rules)
        # A run prices every result against the same one or two models: look each up once.
        self._rates: dict[tuple[str, date], tuple[Rate, list[tuple[int, Rate]]]] = {}

    @classmethod
    def load(cls, extra: Path | None = None, rules: Iterable[PriceRules] = ()) -> PriceTable:
        """The bundled table, plus the rows of `extra` (a user's pricing file), which win ties."""
        rows: list[_Row] = []
        for path in _BUNDLED:
            bundled = resources.files("batch_arbiter").joinpath(path)
            rows += _parse(bundled.read_text(encoding="utf-8"), path.rpartition("/")[2], start=len(rows))
        if extra is not None:
            try:
                text = extra.read_text(encoding="utf-8")
            except OSError as exc:
                raise PricingError(f"cannot read pricing file {extra}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise PricingError(f"pricing file {extra} is not UTF-8 text (byte {exc.start})") from None
            rows += _parse(text, str(extra), start=len(rows))
        return cls(rows, rules)

    def rate(self, model: str, on: date, prompt_tokens: int = 0) -> Rate:
        """The rate for one request of `prompt_tokens`; 0 (the default) gives the base, short-prompt rate."""
        key = (model, on)
        if key not in self._rates:
            self._rates[key] = self._lookup(model, on)
        base, tiers = self._rates[key]
        rate = base
        for threshold, tier in tiers:
            if prompt_tokens > threshold:
                rate = tier
        return rate

    def _lookup(self, model: str, on: date) -> tuple[Rate, list[tuple[int, Rate]]]:
        candidates = [r for r in self._rows if r.effective_from <= on and fnmatch.fnmatchcase(model, r.glob)]
        base = [r for r in candidates if not r.above_prompt_tokens]
        if not base:
            known = ", ".join(self.known_models())
            raise PricingError(f"no price for model {model!r} on {on.isoformat()}; known models: {known}")
        best: dict[int, _Row] = {}
        for row in candidates:
            if row.above_prompt_tokens:
                held = best.get(row.above_prompt_tokens)
                if held is None or _rank(row) > _rank(held):
                    best[row.above_prompt_tokens] = row
        tiers = sorted((threshold, row.rate) for threshold, row in best.items())
        return max(base, key=_rank).rate, tiers

    def rules_for(self, model: str) -> PriceRules:
        """The billing rules of the provider that serves `model` (plain rules for a model none claims)."""
        return next((r for r in self._rules if model.startswith(r.model_prefix)), PriceRules(model_prefix=""))

    def knows(self, model: str) -> bool:
        """Whether any base row prices `model`."""
        return any(fnmatch.fnmatchcase(model, r.glob) for r in self._rows if not r.above_prompt_tokens)

    def known_models(self, prefix: str = "") -> list[str]:
        """Model ids named by the table (globs shown without their trailing `*`), those starting `prefix`."""
        names = {r.glob.rstrip("*") for r in self._rows if not r.above_prompt_tokens}
        return sorted(n for n in names if n.startswith(prefix))

    def cost(self, model: str, usage: Usage, on: date, *, batch: bool, per_request: bool = False) -> float:
        """What `usage` costs. `batch`: at the half-price rate (a batch, or Gemini's Flex tier).

        `per_request`: `usage` is one request's, so a long-context tier applies when its prompt is above the
        tier's threshold; totals over many requests must not set it (their sum is no prompt size).
        """
        prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens if per_request else 0
        rate = self.rate(model, on, prompt)
        cache_5m = max(usage.cache_creation_tokens - usage.cache_creation_1h_tokens, 0)
        rules = self.rules_for(model)
        cache_write_1h_rate = rate.input * rules.cache_write_1h_multiplier
        discounted = (
            usage.input_tokens * rate.input
            + cache_5m * rate.cache_write
            + usage.cache_creation_1h_tokens * cache_write_1h_rate
            + usage.output_tokens * rate.output
        )
        cache_reads = usage.cache_read_tokens * rate.cache_read
        if batch:
            discounted *= BATCH_DISCOUNT
            if rules.batch_discounts_cache_reads:
                cache_reads *= BATCH_DISCOUNT
        return (discounted + cache_reads) / 1_000_000


def _parse(text: str, name: str, start: int) -> list[_Row]:
    rows: list[_Row] = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    for n, fields in zip((n for n, _ in lines), csv.reader((line for _, line in lines), delimiter="\t"), strict=True):
        if tuple(f.strip() for f in fields) in (_COLUMNS, (*_COLUMNS, _TIER_COLUMN)):
            continue
        if len(fields) not in (len(_COLUMNS), len(_COLUMNS) + 1):
            raise PricingError(
                f"{name}:{n}: expected {len(_COLUMNS)} tab-separated columns {_COLUMNS} "
                f"(and optionally {_TIER_COLUMN}), got {len(fields)}"
            )
        glob, when, *prices = (f.strip() for f in fields[: len(_COLUMNS)])
        try:
            effective = date.fromisoformat(when)
            values = [float(p) for p in prices]
            above = int(fields[len(_COLUMNS)].strip() or 0) if len(fields) > len(_COLUMNS) else 0
        except ValueError as exc:
            raise PricingError(f"{name}:{n}: {exc}") from exc
        if not all(math.isfinite(v) for v in values):
            raise PricingError(f"{name}:{n}: prices must be finite numbers")
        if any(v < 0 for v in values) or above < 0:
            raise PricingError(f"{name}:{n}: prices and thresholds must not be negative")
        rows.append(_Row(glob, effective, Rate(*values), start + len(rows), above))
    return rows


def _rank(row: _Row) -> tuple[int, date, int]:
    """Most specific glob first, then the newest row, then the latest loaded (a user's file wins ties)."""
    return (row.specificity, row.effective_from, row.order)


# -- server-tool fees --------------------------------------------------------------------------------

_FEE_COLUMNS = (
    "model_glob",
    "tool",
    "effective_from",
    "unit",
    "usd_per_unit",
    "batch_discount",
    "source",
    "read_on",
    "note",
)
_BUNDLED_FEES = "core/data/tool-fees.tsv"


@dataclass(frozen=True, slots=True)
class ToolFee:
    """One row of the server-tool fee table: what one `unit` of `tool` costs on models matching the glob."""

    model_glob: str
    tool: str
    effective_from: date
    unit: str
    usd_per_unit: float
    # Whether the provider documents its batch discount on this fee (none does, so far).
    batch_discount: bool
    source: str
    read_on: date
    note: str

    @property
    def specificity(self) -> int:
        """How much of the glob is literal: the more specific row wins."""
        return sum(ch not in "*?[]" for ch in self.model_glob)


class ToolFeeTable:
    """The dated server-tool fees (`core/data/tool-fees.tsv`), looked up by model, tool and date."""

    def __init__(self, rows: Iterable[ToolFee]) -> None:
        self._rows = list(rows)

    @classmethod
    def load(cls) -> ToolFeeTable:
        """The bundled table."""
        text = resources.files("batch_arbiter").joinpath(_BUNDLED_FEES).read_text(encoding="utf-8")
        return cls(_parse_fees(text, _BUNDLED_FEES.rpartition("/")[2]))

    @property
    def rows(self) -> list[ToolFee]:
        """Every row, in file order."""
        return list(self._rows)

    def fee(self, model: str, tool: str, on: date) -> ToolFee | None:
        """The row that prices `tool` on `model` on date `on`: the most specific glob, then the newest."""
        candidates = [
            r
            for r in self._rows
            if r.tool == tool and r.effective_from <= on and fnmatch.fnmatchcase(model, r.model_glob)
        ]
        return max(candidates, key=lambda r: (r.specificity, r.effective_from), default=None)


@functools.cache
def tool_fee_table() -> ToolFeeTable:
    """The bundled fee table, read once."""
    return ToolFeeTable.load()


def tool_fee_unit(model: str, tool: str, on: date) -> str | None:
    """What to count for `tool` on `model` (`search`, `search_query`, `grounded_prompt`, ...): the unit
    `tool_fees_usd` prices; None when the table has no row for it."""
    row = tool_fee_table().fee(model, tool, on)
    return row.unit if row is not None else None


def tool_fees_usd(
    model: str,
    counts: Mapping[str, float],
    on: date,
    *,
    batch: bool = False,
    table: ToolFeeTable | None = None,
) -> float:
    """What a turn's server-tool use costs beyond its tokens, in USD.

    `model` is the model id (its provider and generation decide the fee); `counts` maps server-tool
    names (core/tools.py) to how many of the row's unit were used (`tool_fee_unit` says which).
    `batch`: the turn ran in a batch; the discount applies only to fees whose row documents it. A tool
    the catalogue does not know, a negative or non-finite count, or a tool with no fee row for the
    model is a PricingError: a fee is never guessed as zero.
    """
    table = table or tool_fee_table()
    total = 0.0
    for tool, count in counts.items():
        if tool not in SERVER_TOOLS:
            raise PricingError(f"no fee for {tool!r}: not a server tool (known: {', '.join(SERVER_TOOLS)})")
        if not math.isfinite(count) or count < 0:
            raise PricingError(f"{tool} count must be a finite number, not negative (got {count!r})")
        if not count:
            continue
        row = table.fee(model, tool, on)
        if row is None:
            raise PricingError(f"no {tool} fee for model {model!r} on {on.isoformat()}")
        fee = count * row.usd_per_unit
        total += fee * BATCH_DISCOUNT if batch and row.batch_discount else fee
    return total


def _parse_fees(text: str, name: str) -> list[ToolFee]:
    rows: list[ToolFee] = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    for n, fields in zip((n for n, _ in lines), csv.reader((line for _, line in lines), delimiter="\t"), strict=True):
        cells = [f.strip() for f in fields]
        if tuple(cells) == _FEE_COLUMNS:
            continue
        if len(cells) != len(_FEE_COLUMNS):
            raise PricingError(f"{name}:{n}: expected {len(_FEE_COLUMNS)} tab-separated columns {_FEE_COLUMNS}")
        glob, tool, when, unit, usd, discount, source, read_on, note = cells
        try:
            row = ToolFee(
                glob,
                tool,
                date.fromisoformat(when),
                unit,
                float(usd),
                discount == "yes",
                source,
                date.fromisoformat(read_on),
                note,
            )
        except ValueError as exc:
            raise PricingError(f"{name}:{n}: {exc}") from exc
        if tool not in SERVER_TOOLS or discount not in ("yes", "no"):
            raise PricingError(f"{name}:{n}: tool must be one of {', '.join(SERVER_TOOLS)}, batch_discount yes or no")
        if not math.isfinite(row.usd_per_unit) or row.usd_per_unit < 0 or not source.startswith("https://"):
            raise PricingError(f"{name}:{n}: a fee is a finite, non-negative number with an https source")
        rows.append(row)
    return rows
