"""How often a workflow's `schedule` cron expression fires.

Parsing is croniter's; counting is done here, day by day, so that a month's count is exact and the
long-run average covers a whole Gregorian cycle (400 years: leap days and weekdays come out right)
without iterating over every firing.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from croniter import CroniterError, croniter

from batch_arbiter.errors import InputError

# 400 Gregorian years repeat exactly (146097 days, a whole number of weeks).
CYCLE_YEARS = 400
CYCLE_START = 2000
MONTHS_PER_CYCLE = CYCLE_YEARS * 12
DAYS_PER_MONTH = 146097 / MONTHS_PER_CYCLE

_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_NAMES = {
    3: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    4: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}
_FIELD_SYNTAX = re.compile(r"^[0-9A-Za-z*,/\-]+$")
_WORD = re.compile(r"[A-Za-z]+")


class CronError(InputError):
    """An expression GitHub's scheduler would not accept."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed five-field expression. Days of week use cron's numbering (0 = Sunday)."""

    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # cron's rule: when both day fields are restricted a day matching either one fires (OR);
    # when either is `*` only the other one counts. croniter treats only a literal `*` as unrestricted.
    any_day: bool
    any_weekday: bool

    def fires_on(self, month: int, day: int, weekday: int) -> bool:
        if month not in self.months:
            return False
        if self.any_day or self.any_weekday:
            return day in self.days and weekday in self.weekdays
        return day in self.days or weekday in self.weekdays

    @property
    def runs_per_day(self) -> int:
        return len(self.minutes) * len(self.hours)

    def runs_in_month(self, year: int, month: int) -> int:
        first_weekday, length = calendar.monthrange(year, month)
        # calendar counts Monday as 0; cron counts Sunday as 0.
        days = sum(self.fires_on(month, d, (first_weekday + d) % 7) for d in range(1, length + 1))
        return days * self.runs_per_day

    @property
    def runs_per_month(self) -> float:
        """Average firings per calendar month, over a whole Gregorian cycle."""
        return _runs_per_month(self)


def parse(expr: str) -> Cron:
    """Parse a GitHub Actions schedule: five fields, numbers, `*`, `,`, `-`, `/`, month and day names."""
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(f"cron {expr!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}")
    for index, text in enumerate(fields):
        if not _FIELD_SYNTAX.match(text):
            raise CronError(f"cron {expr!r}: {_FIELDS[index]} field {text!r} uses syntax GitHub does not accept")
        for word in _WORD.findall(text):
            if word.lower() not in _NAMES.get(index, set()):
                raise CronError(f"cron {expr!r}: {_FIELDS[index]} field {text!r}: {word!r} is not accepted there")
    try:
        expanded, nth = croniter.expand(" ".join(fields))
    except CroniterError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CronError(f"cron {expr!r}: {reason}") from None
    if nth:
        raise CronError(f"cron {expr!r}: `#` (nth weekday) is not accepted by GitHub")
    full = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
    sets = [_values(values, low, high) for values, (low, high) in zip(expanded, full, strict=True)]
    return Cron(
        expr=" ".join(fields),
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=frozenset(d % 7 for d in sets[4]),
        any_day=expanded[2] == ["*"],
        any_weekday=expanded[4] == ["*"],
    )


def _values(values: list[Any], low: int, high: int) -> frozenset[int]:
    if values == ["*"]:
        return frozenset(range(low, high + 1))
    if not all(isinstance(v, int) for v in values):
        raise CronError(f"unsupported cron value in {values!r}")
    return frozenset(int(v) for v in values)


@lru_cache(maxsize=1)
def _cycle_days() -> Counter[tuple[int, int, int]]:
    """How many times each (month, day, weekday) occurs in one 400-year cycle."""
    counts: Counter[tuple[int, int, int]] = Counter()
    for year in range(CYCLE_START, CYCLE_START + CYCLE_YEARS):
        for month in range(1, 13):
            first_weekday, length = calendar.monthrange(year, month)
            for day in range(1, length + 1):
                counts[(month, day, (first_weekday + day) % 7)] += 1
    return counts


@lru_cache(maxsize=4096)
def _runs_per_month(cron: Cron) -> float:
    days = sum(n for (m, d, w), n in _cycle_days().items() if cron.fires_on(m, d, w))
    return days * cron.runs_per_day / MONTHS_PER_CYCLE
