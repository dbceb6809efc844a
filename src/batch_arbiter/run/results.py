"""Streams each request's final result to `results.jsonl` (and `<custom_id>.md`), keeping totals."""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import IO, Any

from batch_arbiter.core.pricing import PriceTable, PricingError, savings_percent
from batch_arbiter.core.prompts import CUSTOM_ID_PATTERN
from batch_arbiter.core.records import Outcome, PromptRequest, RequestResult, Status, Usage, Validation, Via
from batch_arbiter.files import open_own, write_own

RESULTS_FILE = "results.jsonl"
# The structured results of a run with a response schema, one array for a following step.
RESULTS_JSON_FILE = "results.json"
MAX_QUEUED_ANSWERS = 256


@dataclass
class Totals:
    """Running sums over results lines: counts by status, route, tier and model, tokens, and both costs."""

    statuses: Counter[str] = field(default_factory=Counter)
    via: Counter[str] = field(default_factory=Counter)
    # Service tiers the requests ran on (batch, standard, flex), pending ones left out.
    tiers: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    sync_cost_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    # Answers held to a response schema: valid, fixed (invalid, then valid on the rerun), invalid.
    validation: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        """Results lines counted, pending ones included."""
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        """Requests that have an answer."""
        return self.statuses[Status.SUCCEEDED]

    @property
    def incomplete(self) -> int:
        """Requests answered but cut short at the output limit: their text is kept."""
        return self.statuses[Status.INCOMPLETE]

    @property
    def failed(self) -> int:
        """Requests that ended without an answer (errored, expired or canceled); pending ones have not
        ended, and incomplete ones have an answer."""
        return self.requests - self.succeeded - self.incomplete - self.statuses[Status.PENDING]

    @property
    def savings_usd(self) -> float:
        """What the run saved against the same tokens run synchronously; negative if it cost more."""
        return self.sync_cost_usd - self.cost_usd

    @property
    def savings_percent(self) -> float:
        """The savings as a percentage of the sync cost (0 when there is no sync cost)."""
        return savings_percent(self.cost_usd, self.sync_cost_usd)

    def count(self, record: dict[str, Any], usage: Usage | None = None) -> None:
        """Add one results line (`usage`: its usage, when the caller still has it as an object)."""
        status = Status(record["status"])
        self.statuses[status] += 1
        if status is not Status.PENDING:
            self.via[record["via"]] += 1
        if record.get("tier"):
            self.tiers[record["tier"]] += 1
        if status in (Status.SUCCEEDED, Status.INCOMPLETE) and record.get("model"):
            self.models[record["model"]] += 1
        self.usage.add(usage if usage is not None else Usage(**record["usage"]))
        self.cost_usd += record["cost_usd"]
        self.sync_cost_usd += record["sync_cost_usd"]
        if record.get("validation"):
            self.validation[record["validation"]] += 1

    def minus(self, other: Totals) -> Totals:
        """What this run added on top of `other` (results an earlier run already paid for)."""
        usage = Usage(**{k: v - getattr(other.usage, k) for k, v in self.usage.as_dict().items()})
        return Totals(
            self.statuses - other.statuses,
            self.via - other.via,
            self.tiers - other.tiers,
            self.models - other.models,
            usage,
            self.cost_usd - other.cost_usd,
            self.sync_cost_usd - other.sync_cost_usd,
            set(self.unpriced_models),
            self.validation - other.validation,
        )


class ResultWriter:
    """Owns the output directory's result files. Not thread-safe: write from one thread."""

    def __init__(
        self, out_dir: Path, prices: PriceTable, model: str, today: date, redact: Callable[[str], str] = str
    ) -> None:
        self.out_dir = out_dir
        self._answer_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="answers")
        self._answers: deque[Future[None]] = deque()
        # Model text and API errors are untrusted: a reply that echoes a secret must not store it.
        self._redact = redact
        self.path = out_dir / RESULTS_FILE
        self._prices = prices
        self._model = model
        self._today = today
        self.totals = Totals()
        # The part of `totals` carried over from an earlier run: already logged as spent there.
        self.carried = Totals()
        self.written: set[str] = set()
        out_dir.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open_own(self.path)

    def write(
        self, outcome: Outcome, source: str, via: Via, *, first: tuple[Outcome, Via] | None = None
    ) -> RequestResult:
        """Price one outcome, append its results line and, if it succeeded, its answer file (and, with a
        response schema, `<custom_id>.json`). `first`: an earlier answer of the request that did not match
        its schema, paid for too, so its usage and cost are added to the line and it is kept there.

        Raises ValueError for a `custom_id` already written: no request is counted or paid for twice.
        """
        if outcome.custom_id in self.written:
            raise ValueError(f"result for {outcome.custom_id} written twice")
        model = outcome.model or self._model
        tier = outcome.tier or _default_tier(outcome.status, via)
        cost, sync_cost = self._price(model, outcome.usage, via is Via.BATCH or tier == "flex")
        usage, first_answer = outcome.usage, None
        if first is not None:
            earlier, earlier_via = first
            earlier_tier = earlier.tier or _default_tier(earlier.status, earlier_via)
            earlier_model = earlier.model or self._model
            cost_1, sync_cost_1 = self._price(
                earlier_model, earlier.usage, earlier_via is Via.BATCH or earlier_tier == "flex"
            )
            cost, sync_cost = cost + cost_1, sync_cost + sync_cost_1
            usage = replace(usage)
            usage.add(earlier.usage)
            first_answer = {
                "via": str(earlier_via),
                "tier": earlier_tier,
                "model": earlier_model,
                "error": None if earlier.error is None else self._redact(earlier.error),
                "text": None if earlier.text is None else self._redact(earlier.text),
                "usage": earlier.usage.as_dict(),
                "cost_usd": round(cost_1, 8),
            }
        text = None if outcome.text is None else self._redact(outcome.text)
        value = outcome.json
        if text is not None and text != outcome.text and outcome.validation in (Validation.VALID, Validation.FIXED):
            # A secret the answer echoed is redacted in `json` too: it is read from the redacted text.
            try:
                value = json.loads(text)
            except ValueError:
                value = None
        result = RequestResult(
            custom_id=outcome.custom_id,
            source=source,
            status=outcome.status,
            via=via,
            model=model,
            text=text,
            usage=usage,
            cost_usd=cost,
            sync_cost_usd=sync_cost,
            error=None if outcome.error is None else self._redact(outcome.error),
            tier=tier,
            json=value,
            validation=outcome.validation,
            first_answer=first_answer,
            stop_reason=outcome.stop_reason,
        )
        # The line and the totals first: an interruption below must never write this request again.
        self._append(result.as_dict(), result.usage)
        if (
            outcome.status in (Status.SUCCEEDED, Status.INCOMPLETE)
            and result.text is not None
            and CUSTOM_ID_PATTERN.match(outcome.custom_id)
        ):
            # Only API-valid ids ([A-Za-z0-9_-]{1,64}) name files: nothing can write outside out_dir.
            self._write_answer(self.out_dir / f"{outcome.custom_id}.md", result.text)
            if result.validation in (Validation.VALID, Validation.FIXED):
                self._write_answer(
                    self.out_dir / f"{outcome.custom_id}.json", json.dumps(value, ensure_ascii=False, indent=2) + "\n"
                )
        return result

    def carry(self, record: dict[str, Any]) -> None:
        """A final result an earlier run of the same batches already wrote: kept as it was, not redone."""
        self._append(record)
        self.carried.count(record)

    def _append(self, record: dict[str, Any], usage: Usage | None = None) -> None:
        custom_id = record["custom_id"]
        if custom_id in self.written:
            raise ValueError(f"result for {custom_id} written twice")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.written.add(custom_id)
        self.totals.count(record, usage)

    def _write_answer(self, path: Path, text: str) -> None:
        # Creating a file costs a syscall round trip that dwarfs its small write; a few threads overlap
        # them (the GIL is released in the kernel), and the queue is bounded so memory stays flat.
        if len(self._answers) >= MAX_QUEUED_ANSWERS:
            self._answers.popleft().result()
        self._answers.append(self._answer_pool.submit(write_own, path, text))

    def flush(self) -> None:
        """Hand the buffered results lines to the OS, so a run killed later keeps every line written so far."""
        self._fh.flush()

    def close(self) -> None:
        """Wait for the queued answer files, then close `results.jsonl`; the writer takes no more results."""
        while self._answers:
            self._answers.popleft().result()
        self._answer_pool.shutdown()
        self._fh.close()

    def _price(self, model: str, usage: Usage, discounted: bool) -> tuple[float, float]:
        """(cost, sync cost); `discounted` when the request ran at the half-price rate (batch or Flex)."""
        # The sync baseline is what a synchronous call would have paid: it writes its cache with the
        # 5-minute TTL, not the 1-hour one a batch needs.
        as_sync = replace(usage, cache_creation_1h_tokens=0)
        try:
            return (
                self._prices.cost(model, usage, self._today, batch=discounted, per_request=True),
                self._prices.cost(model, as_sync, self._today, batch=False, per_request=True),
            )
        except PricingError:
            if model == self._model:
                self.totals.unpriced_models.add(model)
                return 0.0, 0.0
            # The API may answer with a dated id the table lacks; the requested model's row prices it.
            return self._price(self._model, usage, discounted)


def _default_tier(status: Status, via: Via) -> str | None:
    """The tier when the provider did not name one: a batch runs on the batch tier, a sync call on standard."""
    if status is Status.PENDING:
        return None
    return "batch" if via is Via.BATCH else "standard"


def write_results_json(out_dir: Path, requests: list[PromptRequest]) -> Path:
    """`results.json`: every request, in the order given, as {custom_id, source, status, json} from the
    final `results.jsonl` (carried lines included); `json` is null where no answer matched its schema.

    Streamed: one pass notes where each request's line starts, a second writes the rows in request order,
    so memory holds offsets, not 250,000 parsed answers."""
    offsets: dict[str, int] = {}
    wanted = {r.custom_id for r in requests}
    path = out_dir / RESULTS_JSON_FILE
    with (out_dir / RESULTS_FILE).open("rb") as src:
        while True:
            at = src.tell()
            line = src.readline()
            if not line:
                break
            try:
                custom_id = json.loads(line).get("custom_id")
            except (ValueError, AttributeError):
                continue
            if custom_id in wanted:
                offsets[custom_id] = at
        with open_own(path) as out:
            out.write("[")
            first = True
            for request in requests:
                at_line = offsets.get(request.custom_id)
                if at_line is None:
                    continue
                src.seek(at_line)
                record = json.loads(src.readline())
                row = {
                    "custom_id": record["custom_id"],
                    "source": record.get("source"),
                    "status": record.get("status"),
                    "json": record.get("json"),
                }
                out.write(("\n  " if first else ",\n  ") + json.dumps(row, ensure_ascii=False))
                first = False
            out.write("\n]\n" if not first else "]\n")
    return path
