"""The status-check schedule for a long batch: how many polls, and how late the end is noticed.

    python bench/poll_schedule.py --hours 20 --first 15

Pure arithmetic over the engine's `next_poll_wait`, so it is exact: the batch ending at the worst moment
(just after a poll) is noticed at the next one.
"""

from __future__ import annotations

import argparse
import json
import sys

from batch_arbiter.run.engine import next_poll_wait


def schedule(first: float, seconds: float) -> list[tuple[float, float]]:
    """(time of each poll, wait before it) until the first poll at or after `seconds`."""
    polls: list[tuple[float, float]] = [(0.0, 0.0)]
    t, attempt = 0.0, 0
    while t < seconds:
        wait = next_poll_wait(first, attempt, t)
        t += wait
        attempt += 1
        polls.append((t, wait))
    return polls


def worst_lag(first: float, ends_at: float) -> float:
    """How long after `ends_at` the next poll comes."""
    return schedule(first, ends_at)[-1][0] - ends_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=20.0)
    parser.add_argument("--first", type=float, default=15.0, help="poll-interval, seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    total = args.hours * 3600
    polls = schedule(args.first, total)
    # The end is noticed late by at most the wait that straddles it: check every moment a batch can end.
    lags = [(t - w, w) for t, w in polls[1:]]
    worst = max((w / max(300.0, 0.1 * start), start, w) for start, w in lags if start < total)
    rows = [
        {"after": h, "polls": sum(1 for t, _ in polls if t <= h * 3600)}
        for h in (0.25, 1, 2, 4, 8, 12, 16, 20)
        if h <= args.hours
    ]
    result = {
        "polls": len(polls),
        "worst_lag_ratio": worst[0],
        "worst_at_s": worst[1],
        "worst_lag_s": worst[2],
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"First wait {args.first:g} s; a {args.hours:g}-hour batch costs {len(polls)} status checks in total.")
    print(
        f"Worst detection lag: {worst[2]:.0f} s for a batch ending at {worst[1]:.0f} s "
        f"({worst[0]:.2f} of the allowed max(5 min, 10 % of elapsed)).\n"
    )
    print("| elapsed (h) | status checks so far |")
    print("|---:|---:|")
    for row in rows:
        print(f"| {row['after']:g} | {row['polls']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
